//! Dry runs (`dnsreg plan`): the decision a join or leave would make, and
//! no write.

use super::*;

/// A dry run (`dnsreg plan`) reads and decides as a join or leave would, and
/// writes nothing: the zone is unchanged and the provider was asked for no
/// write (nor a memory check, which is one on Route53), in each ownership
/// model, even with a memory that would let the real join skip the read.
#[tokio::test]
async fn a_dry_run_shows_the_decision_and_writes_nothing() {
    let person = "www.example.com. A 192.0.2.99";
    for (apart, by_name) in [(false, false), (true, false), (false, true)] {
        let mut m = Memory::new();
        m.apart = apart;
        m.by_name = by_name;
        let how = format!("apart {apart}, by name {by_name}");
        // A person's value equal to this instance's, and another of theirs
        // (the model keeps apart by taking all it reads for its own: none).
        if !apart {
            m.put(MINE[0]);
            m.put(person);
        }
        let zone = || m.sets.lock().unwrap().clone();
        let before = zone();
        let d = dry_run(&m, &intent("i-1", &MINE, false)).await.unwrap();
        let (keep_foreign, keep_others) = if apart {
            (vec![], vec![])
        } else {
            (vec![value(MINE[0])], vec![value(person)])
        };
        // In the order of the rrsets' keys.
        let add = if apart {
            vec![value(MINE[1]), value(MINE[0])]
        } else {
            vec![value(MINE[1])]
        };
        assert_eq!(
            (&d.add, &d.remove, &d.keep_foreign, &d.keep_others),
            (&add, &vec![], &keep_foreign, &keep_others),
            "{how}: {d:?}"
        );
        assert!(d.changes(), "{how}");
        assert_eq!(m.counts().writes, 0, "{how}");
        assert_eq!(zone(), before, "{how}");

        // What the join then does is what the dry run said.
        let o = apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
        assert_eq!(o.added, d.add, "{how}");
        assert_eq!(o.owned, d.owned, "{how}");
        let writes = m.counts().writes;
        let after = zone();
        let mut again = intent("i-1", &MINE, false);
        again.known = o.owned.clone();
        again.memory = o.memory.clone();
        let d = dry_run(&m, &again).await.unwrap();
        assert!(!d.changes(), "{how}: {d:?}");
        assert_eq!(d.owned, o.owned, "{how}");
        assert_eq!(d.keep_foreign, keep_foreign, "{how}");

        // A leave would remove what it owns, and only that.
        let mut leave = intent("i-1", &MINE, true);
        leave.known = o.owned.clone();
        leave.memory = o.memory.clone();
        let d = dry_run(&m, &leave).await.unwrap();
        let mut removed = d.remove.clone();
        removed.sort();
        let mut owned: Vec<Value> = o.owned.iter().cloned().collect();
        owned.sort();
        assert_eq!(removed, owned, "{how}: {d:?}");
        assert!(d.add.is_empty() && d.changes(), "{how}");
        assert_eq!(m.counts().writes, writes, "{how}: no write");
        assert_eq!(zone(), after, "{how}: nothing changed");
    }
}

/// A value this instance owns that another instance claims too is left for
/// it, and the dry run of a leave says so.
#[tokio::test]
async fn a_dry_run_of_a_leave_keeps_a_value_another_instance_claims() {
    let mut m = Memory::new();
    m.by_name = true;
    apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
    let theirs = [MINE[0], "h2.example.com. A 192.0.2.1"];
    apply(&m, &intent("i-2", &theirs, false)).await.unwrap();
    let writes = m.counts().writes;
    let d = dry_run(&m, &intent("i-1", &MINE, true)).await.unwrap();
    assert_eq!(d.remove, vec![value(MINE[1])], "{d:?}");
    assert_eq!(d.keep_others, vec![value(MINE[0])], "{d:?}");
    assert_eq!(m.counts().writes, writes);
}
