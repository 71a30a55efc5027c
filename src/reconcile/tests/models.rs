//! The ownership models besides the shared rrset rewritten whole: rrsets
//! kept apart (Route53 multivalue), where a change from memory is one write,
//! and claims kept by name (RFC 2136), where a write is conditional on the
//! claims alone.

use super::*;

#[tokio::test]
async fn apart_a_join_and_a_leave_are_one_write_each_from_memory() {
    let mut m = Memory::new();
    m.apart = true;
    let mut i = intent("i-1", &MINE, false);
    let o = apply(&m, &i).await.unwrap();
    assert_eq!(
        (m.counts().reads, m.counts().writes),
        (0, 1),
        "the first join only writes"
    );
    i.memory = o.memory.clone();
    i.known = o.owned.clone();
    // A reconcile from memory: one write that changes nothing but checks
    // that what is remembered is still there; no read.
    let o = apply(&m, &i).await.unwrap();
    assert!(!o.changed());
    assert_eq!((m.counts().reads, m.counts().writes), (0, 2));
    // Leave from memory: one write, no read, no listing.
    let mut leave = intent("i-1", &MINE, true);
    leave.memory = o.memory.clone();
    leave.known = o.owned.clone();
    let o = apply(&m, &leave).await.unwrap();
    assert_eq!(o.removed.len(), 2);
    let c = m.counts();
    assert_eq!((c.reads, c.writes, c.lists), (0, 3, 0), "{c:?}");
    assert!(m.sets.lock().unwrap().is_empty());
}

/// Claims kept by name (RFC 2136): a join reads the record rrsets and
/// writes once, claims presumed absent; a leave from memory is one write and
/// no read at all.
#[tokio::test]
async fn by_name_a_join_reads_the_records_only_and_a_leave_is_one_write() {
    let mut m = Memory::new();
    m.by_name = true;
    let mut i = intent("i-1", &MINE, false);
    let o = apply(&m, &i).await.unwrap();
    assert_eq!(o.added.len(), 2);
    let c = m.counts();
    assert_eq!((c.reads, c.writes, c.lists), (1, 1, 0), "{c:?}");
    // The two record rrsets; neither claim nor the registry (a machine's
    // first join in a fleet asks nothing it is not publishing into).
    assert_eq!(c.rrsets_read, 2, "{c:?}");
    i.memory = o.memory.clone();
    i.known = o.owned.clone();
    let mut leave = intent("i-1", &MINE, true);
    leave.memory = o.memory;
    leave.known = o.owned;
    let o = apply(&m, &leave).await.unwrap();
    assert_eq!(o.removed.len(), 2);
    let c = m.counts();
    assert_eq!((c.reads, c.writes, c.lists), (1, 2, 0), "{c:?}");
    assert!(
        m.sets.lock().unwrap().is_empty(),
        "values, claims, registry: all gone"
    );
}

/// Claims kept by name: a new instance given an address another instance
/// publishes claims the value too; a claim presumed absent from an empty
/// memory must not make it take the value for a person's.
#[tokio::test]
async fn by_name_an_address_published_by_another_instance_is_claimed_too() {
    let mut m = Memory::new();
    m.by_name = true;
    apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
    // With a host record of its own to add, so that the join writes.
    let theirs = [MINE[0], "h2.example.com. A 192.0.2.1"];
    let o = apply(&m, &intent("i-2", &theirs, false)).await.unwrap();
    assert!(o.foreign.is_empty(), "{o:?}");
    assert!(registry_of(&m, "i-2").owned.contains(&value(MINE[0])));
    // i-1 leaves: the value stays for i-2; then i-2 leaves: it goes.
    let o = apply(&m, &intent("i-1", &MINE, true)).await.unwrap();
    assert_eq!(o.protected, vec![value(MINE[0])]);
    assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.1"]);
    apply(&m, &intent("i-2", &theirs, true)).await.unwrap();
    assert!(m.sets.lock().unwrap().is_empty());
}

/// Claims kept by name: a claim remembered wrong (another instance claimed
/// the value since) is refused by the write's prerequisite, read, and the
/// value stays for the other.
#[tokio::test]
async fn by_name_a_leave_from_a_stale_memory_never_removes_a_value_claimed_since() {
    let mut m = Memory::new();
    m.by_name = true;
    let o = apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
    apply(&m, &intent("i-2", &MINE[..1], false)).await.unwrap();
    let mut leave = intent("i-1", &MINE, true);
    leave.memory = o.memory;
    leave.known = o.owned;
    let o = apply(&m, &leave).await.unwrap();
    assert_eq!(o.conflicts, 1, "{o:?}");
    assert_eq!(o.protected, vec![value(MINE[0])]);
    assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.1"]);
}

#[tokio::test]
async fn a_wrong_memory_costs_a_refused_write_and_a_read_never_a_wrong_write() {
    let mut m = Memory::new();
    m.apart = true;
    let o = apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
    // Someone deleted this instance's SRV behind its back.
    m.take(&value(MINE[1]));
    let mut leave = intent("i-1", &MINE, true);
    leave.memory = o.memory;
    leave.known = o.owned;
    let o = apply(&m, &leave).await.unwrap();
    assert_eq!(o.conflicts, 1);
    assert_eq!(o.removed, vec![value(MINE[0])]);
    assert!(m.sets.lock().unwrap().is_empty());
}
