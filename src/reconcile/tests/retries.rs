//! The retry loop: a refused write is read again and decided anew without
//! losing the other writer's value, throttling keeps what was read, and
//! nothing waits past the operation's deadline.

use super::*;

#[tokio::test]
async fn conflicts_are_resolved_by_reading_again_without_losing_the_other_writer() {
    let m = Memory::new();
    m.interfere.store(3, Ordering::SeqCst);
    let o = apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
    assert!(o.conflicts >= 1);
    let www = m.lines("www.example.com", RType::A);
    assert!(www.contains(&"192.0.2.1".to_string()), "{www:?}");
    assert_eq!(www.len(), 4, "{www:?}");
}

#[tokio::test(start_paused = true)]
async fn endless_conflicts_give_up_at_the_deadline() {
    let m = Memory::new();
    m.interfere.store(u32::MAX, Ordering::SeqCst);
    let mut i = intent("i-1", &MINE, false);
    i.deadline = Duration::from_secs(3);
    let e = apply(&m, &i).await.unwrap_err().to_string();
    assert!(
        e.contains("gave up after") && e.contains("conflicting writes"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_read_throttled_midway_keeps_the_rrsets_it_read() {
    // Route53 once the zone is large: a request per rrset, here with one
    // token at a time, so the second rrset's request is refused.
    let mut m = Memory::new();
    m.per_rrset = true;
    m.bucket = Some(Arc::new(Mutex::new(Bucket::new(1.0, 1.0))));
    m.put("www.example.com. A 192.0.2.250");
    m.put("_a._tcp.example.com. SRV 0 0 80 other.example.com.");
    let keys: BTreeSet<RrKey> = [
        "www.example.com. A 192.0.2.250",
        "_a._tcp.example.com. SRV 0 0 80 other.example.com.",
    ]
    .iter()
    .map(|l| value(l).key())
    .collect();
    let mut tries = Attempts::new("memory", Duration::from_secs(60)).paced(&m.pacer);
    let snap = read_all(&m, &mut tries, false, &keys).await.unwrap();
    for k in &keys {
        assert_eq!(m.values(&snap, k).len(), 1, "{k}");
    }
    let c = m.counts();
    assert!(c.throttled > 0, "the limit was met: {c:?}");
    // Read in one call, the accepted first rrset was read again after the
    // refusal of the second.
    assert_eq!(c.reads, 2, "each rrset read once: {c:?}");
}

/// A throttled retry never waits past the operation's deadline: an instance
/// of a crowd whose backoff window has grown to most of a minute still tries
/// within a stop of twenty seconds, and gets through. (Without it, the window
/// ran past the stop and the leave gave up having sent nothing more.)
#[tokio::test(start_paused = true)]
async fn a_throttled_retry_comes_within_the_deadline_however_grown_the_window() {
    let pacer = Pacer::new(Backoff::BUSY);
    // A crowd's refusals: the next window is up to a minute.
    for _ in 0..28 {
        pacer.busy("Throttling: Rate exceeded", None);
    }
    let deadline = Duration::from_secs(20);
    let start = Instant::now();
    let mut tries = Attempts::new("p", deadline).paced(&pacer);
    let calls = Mutex::new(Vec::new());
    let got = attempt(&mut tries, "removing", || async {
        pacer.ready().await;
        let mut calls = calls.lock().unwrap();
        calls.push(start.elapsed());
        if calls.len() < 3 {
            pacer.busy("Throttling: Rate exceeded", None);
            return Err(Fail::Busy {
                why: "Throttling: Rate exceeded".into(),
                retry_after: None,
            });
        }
        Ok(calls.len())
    })
    .await;
    let calls = calls.into_inner().unwrap();
    assert_eq!(got.unwrap(), 3, "{calls:?}");
    assert!(calls.iter().all(|t| *t < deadline), "{calls:?}");
}
