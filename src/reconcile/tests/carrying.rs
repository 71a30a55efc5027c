//! A fleet at once: instances that meet contention announce, wait and are
//! carried by whoever writes the shared rrset next; a leaving carrier stays
//! while others announce, and a join cut off while it waited leaves its
//! leave a memory.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_fleet_at_once_converges_with_writes_in_proportion_to_its_size() {
    let mut m = Memory::new();
    m.jitter = Some(Mutex::new(StdRng::seed_from_u64(7)));
    m.lists = true;
    let m = Arc::new(m);
    let n = 40;
    let joins = (0..n)
        .map(|k| {
            let m = m.clone();
            tokio::spawn(async move {
                let lines = [
                    format!("www.example.com. A 192.0.2.{}", k + 1),
                    format!("h{k}.example.com. A 192.0.2.{}", k + 1),
                ];
                let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
                let mut i = intent(&format!("i-{k}"), &refs, false);
                i.deadline = Duration::from_secs(600);
                apply(&*m, &i).await.unwrap()
            })
        })
        .collect::<Vec<_>>();
    let mut by_peers = 0;
    for j in joins {
        by_peers += j.await.unwrap().by_peers;
    }
    assert_eq!(m.lines("www.example.com", RType::A).len(), n);
    for k in 0..n {
        let r = registry_of(&m, &format!("i-{k}"));
        assert_eq!(r.owned.len(), 2, "i-{k}: {r:?}");
        assert!(r.wanted.is_empty() && r.dropped.is_empty());
    }
    let c = m.counts();
    eprintln!("fleet of {n}: {c:?}, carried for {by_peers}");
    // Every instance races at first; the ones that lose announce and most
    // are then carried by a peer's write: far fewer than N rounds of N.
    assert!(by_peers > 0, "nobody was carried by a peer");
    assert!(
        (c.writes as usize) < 6 * n,
        "{} writes for {n} instances ({c:?})",
        c.writes
    );
}

/// `id` announces the removal of `line`, as a leaving instance's own write
/// does: its registry's owned line becomes a drop line.
fn announce_drop(m: &Memory, id: &str, line: &str) {
    let reg = |prefix: &str| {
        value(&format!(
            "{id}._dnsreg.example.com. TXT \"{prefix} {}\"",
            line.replace('"', "\\\"")
        ))
    };
    m.take(&reg("dnsreg1"));
    m.put(&format!(
        "{id}._dnsreg.example.com. TXT \"dnsreg1-drop {}\"",
        line.replace('"', "\\\"")
    ));
}

#[tokio::test(start_paused = true)]
async fn a_leave_that_carries_hands_a_value_another_instance_wants_over_to_it() {
    // i-1 publishes www 192.0.2.5; i-2, at the same address, announced that
    // it wants that value too. i-1 leaves on a throttled provider (so it
    // announces, looks, and carries): the value stays, now i-2's, and i-1
    // does not report it removed.
    trace_if_asked();
    let mut m = Memory::new();
    m.lists = true;
    let m = Arc::new(m);
    let v = "www.example.com. A 192.0.2.5";
    let joined = apply(&*m, &intent("i-1", &[v], false)).await.unwrap();
    m.put(&format!(
        "i-2._dnsreg.example.com. TXT \"dnsreg1-want {v}\""
    ));
    let mut leave = intent("i-1", &[v], true);
    leave.known = joined.owned.clone();
    leave.memory = joined.memory.clone();
    leave.deadline = Duration::from_secs(60);
    m.pacer
        .busy("Throttling: Rate exceeded", Some(Duration::from_millis(1)));
    let read_before = m.counts().rrsets_read;
    let out = apply(&*m, &leave).await.unwrap();
    // Only the shared rrset is read, to carry: its registry is as its look
    // listed it, its own rrsets as its announcement left them.
    assert_eq!(m.counts().rrsets_read - read_before, 1, "{:?}", m.counts());
    assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.5"]);
    assert!(
        registry_of(&m, "i-2").owned.contains(&value(v)),
        "{:?}",
        m.sets.lock().unwrap()
    );
    assert!(registry_of(&m, "i-2").wanted.is_empty());
    assert!(m.lines("i-1._dnsreg.example.com", RType::TXT).is_empty());
    assert!(out.removed.is_empty(), "handed over, not removed: {out:?}");
}

#[tokio::test(start_paused = true)]
async fn a_leaving_carrier_stays_to_carry_those_who_announce_after_it() {
    // A scale-in of three sharing www, with a person's value there too, on
    // a provider that throttles (so a leave announces rather than race): i-2
    // announced its removal before i-1 leaves; i-3 announces only after
    // i-1's carrying write, and then nobody else writes. i-1 announces, is
    // first in line, carries i-2, and stays to carry i-3 too.
    let mut m = Memory::new();
    m.lists = true;
    let m = Arc::new(m);
    m.put("www.example.com. A 192.0.2.250");
    let line = |k: u32| format!("www.example.com. A 192.0.2.{k}");
    let mut last = None;
    for k in [2, 3, 1] {
        last = Some(
            apply(&*m, &intent(&format!("i-{k}"), &[&line(k)], false))
                .await
                .unwrap(),
        );
    }
    let joined = last.unwrap();
    announce_drop(&m, "i-2", &line(2));
    let mut leave = intent("i-1", &[&line(1)], true);
    leave.known = joined.owned.clone();
    leave.memory = joined.memory.clone();
    leave.deadline = Duration::from_secs(60);
    m.pacer
        .busy("Throttling: Rate exceeded", Some(Duration::from_millis(1)));
    let writes_before = m.counts().writes;
    let carrier = {
        let m = m.clone();
        tokio::spawn(async move { apply(&*m, &leave).await.unwrap() })
    };
    // i-3 announces once i-1's first carrying write took out i-2's value.
    let carried_i2 = tokio::time::timeout(Duration::from_secs(30), async {
        while m
            .lines("www.example.com", RType::A)
            .contains(&"192.0.2.2".to_string())
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        carried_i2.is_ok(),
        "i-1 never carried i-2's announced removal: {:?}",
        m.sets.lock().unwrap()
    );
    announce_drop(&m, "i-3", &line(3));
    let announced_at = tokio::time::Instant::now();
    let out = carrier.await.unwrap();
    // Once nobody waits, two quiet rounds of looking and it is done, long
    // before its stop's deadline (60 s).
    let stayed = announced_at.elapsed();
    assert!(
        stayed <= CARRY_ROUND * 5,
        "stayed {stayed:?} after the last announcement"
    );
    assert_eq!(
        m.lines("www.example.com", RType::A),
        vec!["192.0.2.250"],
        "every leaving instance's value went, the person's stayed"
    );
    for k in 1..=3 {
        assert!(
            m.lines(&format!("i-{k}._dnsreg.example.com"), RType::TXT)
                .is_empty(),
            "i-{k}'s registry is gone"
        );
    }
    assert_eq!(out.removed, vec![value(&line(1))]);
    assert_eq!(out.carried, 2, "i-2's value and i-3's: {out:?}");
    // Its announcement, its carrying write and one more for i-3.
    assert_eq!(m.counts().writes - writes_before, 3, "{:?}", m.counts());
}

#[test]
fn the_waiters_look_as_often_as_they_are_few() {
    // The last few of a join storm look within seconds, so that the one
    // not first in line soon sees that nobody carried it and carries
    // itself; two hundred waiting look tens of seconds apart each.
    let left = Duration::from_secs(600);
    for _ in 0..100 {
        assert!(look_after(Some(1), true, left, false) <= Duration::from_secs(3));
        assert!(look_after(Some(3), true, left, false) <= Duration::from_secs(3));
        assert!(look_after(Some(200), true, left, false) >= Duration::from_secs(25));
    }
}

/// A fleet scaled in as soon as it scaled out, on a throttling provider:
/// i-1's join announced, a SIGTERM cut it off while it waited, and a peer
/// carried it meanwhile. Then i-1 leaves, given what the engine would give
/// it (`keep`: what the cut-off join kept; else nothing, as before). Returns
/// the rrsets the leave read.
async fn leave_after_a_join_cut_off(keep: bool) -> u32 {
    trace_if_asked();
    let mut m = Memory::new();
    m.lists = true;
    let m = Arc::new(m);
    let lines = [
        "i-1.example.com. A 192.0.2.1",
        "www.example.com. A 192.0.2.1",
    ];
    let join = intent("i-1", &lines, false);
    m.pacer
        .busy("Throttling: Rate exceeded", Some(Duration::from_millis(1)));
    tokio::select! {
        r = apply(&*m, &join) => panic!("the join was not cut off: {r:?}"),
        () = async {
            while registry_of(&m, "i-1").wanted.is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } => {}
    }
    let peer = m.peer();
    peer.pacer
        .busy("Throttling: Rate exceeded", Some(Duration::from_millis(1)));
    apply(
        &peer,
        &intent("i-2", &["www.example.com. A 192.0.2.2"], false),
    )
    .await
    .unwrap();
    let carried = registry_of(&m, "i-1");
    assert!(
        carried.wanted.is_empty() && carried.owned.contains(&value(lines[1])),
        "i-2 carried i-1: {carried:?}"
    );
    let kept = join.checkpoint.take();
    assert!(kept.is_some(), "the announcement kept a memory");
    let mut leave = intent("i-1", &lines, true);
    leave.known = lines.iter().map(|l| value(l)).collect();
    leave.memory = kept.filter(|_| keep);
    leave.deadline = Duration::from_secs(60);
    let read_before = m.counts().rrsets_read;
    let out = apply(&*m, &leave).await.unwrap();
    assert_eq!(out.removed.len(), 2, "{out:?}");
    assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.2"]);
    assert!(m.lines("i-1.example.com", RType::A).is_empty());
    assert!(
        m.lines("i-1._dnsreg.example.com", RType::TXT).is_empty(),
        "i-1's registry is gone"
    );
    m.counts().rrsets_read - read_before
}

#[tokio::test(start_paused = true)]
async fn a_join_cut_off_while_it_waited_leaves_the_leave_a_memory_to_presume() {
    let presumed = leave_after_a_join_cut_off(true).await;
    let unknown = leave_after_a_join_cut_off(false).await;
    // Without the memory, its registry and its host rrset are read before
    // it can announce (a request each on Route53 once the zone is large);
    // with it, they are presumed as the carrier left them, and the leave
    // reads only when it carries its own announcement.
    assert_eq!(
        unknown.checked_sub(presumed),
        Some(2),
        "rrsets read: {presumed} with the memory, {unknown} without"
    );
}

#[tokio::test(start_paused = true)]
async fn a_leave_that_announces_lists_nobody_before_it_when_its_host_is_named_for_it() {
    // A scale-in on a throttling provider: the leave announces. Its host name
    // made from an address could be another instance's by now (so the
    // others' registries are listed before it is taken out); one made from
    // its own id cannot, and that listing is saved.
    for (host, lists_before) in [("h1", 1), ("i-1", 0)] {
        let mut m = Memory::new();
        m.lists = true;
        let m = Arc::new(m);
        m.put("www.example.com. A 192.0.2.250");
        let mine = [
            "www.example.com. A 192.0.2.1".to_string(),
            format!("{host}.example.com. A 192.0.2.1"),
        ];
        let mine: Vec<&str> = mine.iter().map(String::as_str).collect();
        apply(
            &*m,
            &intent("i-2", &["www.example.com. A 192.0.2.2"], false),
        )
        .await
        .unwrap();
        let joined = apply(&*m, &intent("i-1", &mine, false)).await.unwrap();
        let mut leave = intent("i-1", &mine, true);
        leave.known = joined.owned.clone();
        leave.memory = joined.memory.clone();
        m.pacer
            .busy("Throttling: Rate exceeded", Some(Duration::from_millis(1)));
        let before = m.counts();
        let out = apply(&*m, &leave).await.unwrap();
        let c = m.counts();
        assert_eq!(
            m.lines("www.example.com", RType::A),
            vec!["192.0.2.2", "192.0.2.250"],
            "{host}"
        );
        assert!(
            m.lines(&format!("{host}.example.com"), RType::A).is_empty(),
            "{host}: the host record went"
        );
        assert_eq!(out.removed.len(), 2, "{host}: {out:?}");
        // One look (a listing) after the announcement, which carries it,
        // and the listing before it where the name may be another's.
        assert_eq!(c.lists - before.lists, 1 + lists_before, "{host}: {c:?}");
        assert_eq!(c.writes - before.writes, 2, "{host}: {c:?}");
    }
}
