//! The ownership rules of one join or leave, one instance at a time: what
//! it adds, keeps, removes and claims, the TTLs it leaves alone, and its
//! lease.

use super::*;

#[tokio::test]
async fn join_adds_and_registers_then_changes_nothing() {
    let m = Memory::new();
    let o = apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
    assert_eq!(o.added.len(), 2);
    assert_eq!(o.owned.len(), 2);
    assert_eq!(m.lines("i-1._dnsreg.example.com", RType::TXT).len(), 2);
    let again = apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
    assert!(!again.changed());
    assert_eq!(again.owned, o.owned);
}

#[tokio::test]
async fn a_shared_rrset_keeps_its_ttl_and_one_of_our_own_takes_ours() {
    // A person's value at www with a TTL of 600; the instance publishes www
    // and its host h1 with 60. www is shared: its TTL is not the instance's
    // to change; h1 is the instance's alone.
    let m = Memory::new();
    m.put("www.example.com. A 192.0.2.99");
    let www = RrKey {
        name: DomainName::new("www.example.com").unwrap(),
        rtype: RType::A,
    };
    m.sets.lock().unwrap().get_mut(&www).unwrap().ttl = Some(600);
    let lines = [
        "www.example.com. A 192.0.2.1",
        "h1.example.com. A 192.0.2.1",
    ];
    apply(&m, &intent("i-1", &lines, false)).await.unwrap();
    let ttl = |name: &str, rtype: RType| {
        let key = RrKey {
            name: DomainName::new(name).unwrap(),
            rtype,
        };
        m.sets.lock().unwrap().get(&key).and_then(|s| s.ttl)
    };
    assert_eq!(m.lines("www.example.com", RType::A).len(), 2);
    assert_eq!(ttl("www.example.com", RType::A), Some(600));
    assert_eq!(ttl("h1.example.com", RType::A), Some(60));
    apply(&m, &intent("i-1", &lines, true)).await.unwrap();
    assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.99"]);
    assert_eq!(ttl("www.example.com", RType::A), Some(600));
}

#[tokio::test]
async fn leave_removes_only_what_is_owned() {
    let m = Memory::new();
    m.put("www.example.com. A 192.0.2.99");
    apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
    let o = apply(&m, &intent("i-1", &MINE, true)).await.unwrap();
    assert_eq!(o.removed.len(), 2);
    assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.99"]);
    assert!(m.lines("i-1._dnsreg.example.com", RType::TXT).is_empty());
    // Leaving with nothing owned touches nothing.
    let o = apply(&m, &intent("i-1", &MINE, true)).await.unwrap();
    assert!(!o.changed());
}

#[tokio::test]
async fn a_value_already_there_is_a_persons_and_never_claimed() {
    let m = Memory::new();
    m.put("www.example.com. A 192.0.2.1");
    let o = apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
    assert_eq!(o.foreign, vec![value("www.example.com. A 192.0.2.1")]);
    assert!(
        !registry_of(&m, "i-1")
            .owned
            .contains(&value("www.example.com. A 192.0.2.1"))
    );
    apply(&m, &intent("i-1", &MINE, true)).await.unwrap();
    assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.1"]);
}

#[tokio::test]
async fn values_only_the_state_file_names_are_never_removed() {
    let m = Memory::new();
    m.put("www.example.com. A 192.0.2.7");
    apply(&m, &intent("i-2", &["www.example.com. A 192.0.2.8"], false))
        .await
        .unwrap();
    let mut i = intent("i-1", &MINE, false);
    i.known = [
        "www.example.com. A 192.0.2.7",
        "www.example.com. A 192.0.2.8",
    ]
    .iter()
    .map(|l| value(l))
    .collect();
    // A stale or tampered state file: .7 is a person's (no registry claims
    // it), .8 is i-2's. Neither is this instance's to remove.
    let o = apply(&m, &i).await.unwrap();
    assert!(o.removed.is_empty(), "{:?}", o.removed);
    assert_eq!(
        m.lines("www.example.com", RType::A),
        vec!["192.0.2.1", "192.0.2.7", "192.0.2.8"]
    );
    let mut leave = intent("i-1", &MINE, true);
    leave.known = i.known.clone();
    let o = apply(&m, &leave).await.unwrap();
    let mut own: Vec<Value> = MINE.iter().map(|l| value(l)).collect();
    own.sort();
    assert_eq!(o.removed, own, "only its own");
    assert_eq!(
        m.lines("www.example.com", RType::A),
        vec!["192.0.2.7", "192.0.2.8"]
    );
}

#[tokio::test]
async fn a_lease_is_written_kept_while_fresh_and_renewed_after_a_third() {
    let m = Memory::new();
    let mut i = intent("i-1", &MINE, false);
    i.lease = Some(Duration::from_secs(3600));
    apply(&m, &i).await.unwrap();
    let first = registry_of(&m, "i-1").lease.expect("a lease line");
    assert!(first.abs_diff(unix_now() + 3600) <= 2, "{first}");
    // Fresh: a second join writes nothing.
    let again = apply(&m, &i).await.unwrap();
    assert!(!again.changed());
    assert_eq!(registry_of(&m, "i-1").lease, Some(first));
    let set_lease = |expiry: u64| {
        let key = RrKey {
            name: DomainName::new("i-1._dnsreg.example.com").unwrap(),
            rtype: RType::TXT,
        };
        let mut z = m.sets.lock().unwrap();
        let e = z.get_mut(&key).unwrap();
        e.values
            .retain(|v| !matches!(&v.data, RData::Txt(t) if t[0].starts_with("dnsreg1-lease")));
        e.values.insert(Value {
            name: key.name.clone(),
            data: RData::Txt(vec![format!("dnsreg1-lease {expiry}")]),
        });
    };
    // More than two thirds left, though not the whole: kept as it is.
    let kept = unix_now() + 3000;
    set_lease(kept);
    apply(&m, &i).await.unwrap();
    assert_eq!(registry_of(&m, "i-1").lease, Some(kept));
    // Two thirds left at most: renewed.
    set_lease(unix_now() + 2000);
    apply(&m, &i).await.unwrap();
    assert!(registry_of(&m, "i-1").lease.unwrap() >= unix_now() + 3590);
    assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.1"]);
    // Lease turned off: the line goes.
    i.lease = None;
    apply(&m, &i).await.unwrap();
    assert_eq!(registry_of(&m, "i-1").lease, None);
    assert_eq!(m.lines("i-1._dnsreg.example.com", RType::TXT).len(), 2);
}
