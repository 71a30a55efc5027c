//! Reaping: what an expired registry lists is removed, once, and only
//! where no live instance claims it too.

use super::*;

/// A registry as a crashed instance left it: its values, and a lease line.
fn dead(m: &Memory, id: &str, lines: &[&str], expiry: u64) {
    for l in lines {
        m.put(l);
        m.put(&format!(
            "{id}._dnsreg.example.com. TXT \"dnsreg1 {}\"",
            l.replace('"', "\\\"")
        ));
    }
    m.put(&format!(
        "{id}._dnsreg.example.com. TXT \"dnsreg1-lease {expiry}\""
    ));
}

#[tokio::test]
async fn reap_removes_only_what_is_still_there_of_what_an_expired_registry_lists() {
    // A dead instance's registry lists .7 and .9; someone deleted .9 by hand
    // since. The reap removes .7 and the registry, and says nothing of .9.
    let m = Memory::new();
    let now = unix_now();
    dead(
        &m,
        "i-dead",
        &[
            "www.example.com. A 192.0.2.7",
            "www.example.com. A 192.0.2.9",
        ],
        now - 10,
    );
    m.take(&value("www.example.com. A 192.0.2.9"));
    let reaped = reap(&m, now, Duration::from_secs(10)).await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(
        reaped[0].removed,
        vec![value("www.example.com. A 192.0.2.7")]
    );
    assert!(m.lines("www.example.com", RType::A).is_empty());
    assert!(m.lines("i-dead._dnsreg.example.com", RType::TXT).is_empty());
}

#[tokio::test]
async fn reap_removes_exactly_what_an_expired_registry_lists() {
    let m = Memory::new();
    let now = unix_now();
    m.put("www.example.com. A 192.0.2.99"); // a person's
    dead(
        &m,
        "i-dead",
        &[
            "www.example.com. A 192.0.2.7",
            "www.example.com. A 192.0.2.8",
        ],
        now - 10,
    );
    // A live instance claims .8 too (the address was reused): it stays.
    dead(&m, "i-live", &["www.example.com. A 192.0.2.8"], now + 3600);
    // No lease at all: never reaped.
    apply(
        &m,
        &intent("i-nolease", &["www.example.com. A 192.0.2.5"], false),
    )
    .await
    .unwrap();

    let reaped = reap(&m, now, Duration::from_secs(10)).await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].instance, "i-dead");
    assert_eq!(
        reaped[0].removed,
        vec![value("www.example.com. A 192.0.2.7")]
    );
    assert_eq!(
        reaped[0].protected,
        vec![value("www.example.com. A 192.0.2.8")]
    );
    assert_eq!(
        m.lines("www.example.com", RType::A),
        vec!["192.0.2.5", "192.0.2.8", "192.0.2.99"]
    );
    assert!(m.lines("i-dead._dnsreg.example.com", RType::TXT).is_empty());
    assert!(
        reap(&m, now, Duration::from_secs(10))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn reapers_racing_each_other_and_writers_reap_once_and_lose_nothing() {
    let m = Arc::new(Memory::new());
    let now = unix_now();
    for n in 0..5 {
        dead(
            &m,
            &format!("i-dead{n}"),
            &[&format!("www.example.com. A 192.0.2.{}", 10 + n)],
            now - 1,
        );
    }
    m.interfere.store(4, Ordering::SeqCst);
    let runs = (0..4)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { reap(&*m, now, Duration::from_secs(30)).await.unwrap() })
        })
        .collect::<Vec<_>>();
    let mut total = 0;
    for r in runs {
        total += r.await.unwrap().len();
    }
    assert_eq!(total, 5);
    let left = m.lines("www.example.com", RType::A);
    assert!(left.iter().all(|v| v.starts_with("192.0.2.2")), "{left:?}");
    assert_eq!(left.len(), 4, "{left:?}");
}
