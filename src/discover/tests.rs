use std::collections::HashMap;
use std::net::IpAddr;

use hickory_resolver::proto::rr::Name;
use hickory_resolver::proto::rr::rdata::SRV;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::order::weighted_order;
use super::*;

/// (name, priority, weight)
type Item = (&'static str, u16, u16);

fn seeded(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    move |max| rand::RngExt::random_range(&mut rng, 0..=max)
}

fn ordered(items: &[Item], draw: &mut impl FnMut(u64) -> u64) -> Vec<&'static str> {
    rfc2782_order(items.to_vec(), |&(_, p, w)| (p, w), draw)
        .into_iter()
        .map(|(n, _, _)| n)
        .collect()
}

#[test]
fn lower_priority_always_comes_first() {
    let items = [
        ("backup-a", 20, 50),
        ("main-a", 10, 1),
        ("backup-b", 20, 0),
        ("main-b", 10, 90),
        ("last", 30, 100),
    ];
    for seed in 0..500 {
        let order = ordered(&items, &mut seeded(seed));
        let pos = |n| order.iter().position(|x| *x == n).unwrap();
        assert!(pos("main-a").max(pos("main-b")) < pos("backup-a").min(pos("backup-b")));
        assert!(pos("backup-a").max(pos("backup-b")) < pos("last"));
        assert_eq!(order.len(), items.len());
    }
}

#[test]
fn the_first_pick_follows_the_weights() {
    let items = [("light", 0, 10), ("heavy", 0, 30), ("other-prio", 1, 1000)];
    let mut draw = seeded(7);
    let mut firsts: HashMap<&str, u32> = HashMap::new();
    let n = 20_000;
    for _ in 0..n {
        *firsts.entry(ordered(&items, &mut draw)[0]).or_default() += 1;
    }
    assert_eq!(
        firsts.get("other-prio"),
        None,
        "a higher priority is never first"
    );
    let heavy = f64::from(firsts["heavy"]) / f64::from(n);
    // Expected 30/40 = 0.75.
    assert!((0.73..0.77).contains(&heavy), "heavy first {heavy}");
}

#[test]
fn weight_zero_has_a_very_small_chance_when_others_weigh() {
    let items = [("zero", 0, 0), ("nine", 0, 9)];
    let mut draw = seeded(11);
    let n = 20_000;
    let zero_first = (0..n)
        .filter(|_| ordered(&items, &mut draw)[0] == "zero")
        .count();
    // Picked only when the draw in 0..=9 is 0: 1 in 10.
    let share = zero_first as f64 / f64::from(n);
    assert!((0.08..0.12).contains(&share), "zero first {share}");
}

#[test]
fn all_weights_zero_spread_evenly() {
    let items = [("a", 5, 0), ("b", 5, 0), ("c", 5, 0), ("d", 5, 0)];
    let mut draw = seeded(3);
    let mut firsts: HashMap<&str, u32> = HashMap::new();
    for _ in 0..8_000 {
        *firsts.entry(ordered(&items, &mut draw)[0]).or_default() += 1;
    }
    for n in ["a", "b", "c", "d"] {
        assert!((1_800..2_200).contains(&firsts[n]), "{n}: {firsts:?}");
    }
}

#[test]
fn the_selection_is_the_rfcs_running_sum() {
    // Scripted draws on a list already in "any order": weight 0 moved first.
    let group: Vec<Item> = vec![("b", 0, 10), ("a", 0, 0), ("c", 0, 20)];
    let key = |&(_, p, w): &Item| (p, w);
    let names = |v: Vec<Item>| v.into_iter().map(|(n, _, _)| n).collect::<Vec<_>>();
    // Sums: 30 (a 0, b 10, c 30) -> draw 0 picks a; then 30 (b 10, c 30) -> 10 picks b.
    let mut script = vec![0, 10, 0].into_iter();
    let mut draw = |_: u64| script.next().unwrap();
    assert_eq!(
        names(weighted_order(group.clone(), &key, &mut draw)),
        ["a", "b", "c"]
    );
    // 11 is past a (0) and b (10): c; then sum 10 (a 0, b 10), 1 picks b.
    let mut script = vec![11, 1, 0].into_iter();
    let mut draw = |max: u64| {
        let v = script.next().unwrap();
        assert!(v <= max);
        v
    };
    assert_eq!(
        names(weighted_order(group, &key, &mut draw)),
        ["c", "b", "a"]
    );
}

fn srv(priority: u16, weight: u16, port: u16, target: &str) -> (SRV, u32) {
    (
        SRV::new(priority, weight, port, Name::from_utf8(target).unwrap()),
        60,
    )
}

#[test]
fn a_single_dot_target_means_decidedly_not_available() {
    assert_eq!(
        classify_srv(vec![srv(0, 0, 0, ".")]),
        SrvAnswer::Unavailable
    );
    // Among other records, a "." target is only skipped.
    let SrvAnswer::Targets(t) =
        classify_srv(vec![srv(0, 0, 0, "."), srv(0, 0, 80, "a.example.com.")])
    else {
        panic!("not targets")
    };
    assert_eq!(t.len(), 1);
    assert_eq!(
        Endpoint::srv(&t[0].0, 60, None).lines(),
        ["a.example.com:80"]
    );
}

#[test]
fn txt_strings_become_key_value_pairs() {
    let txt = parse_txt(&[
        b"path=/api",
        b"Secure",
        b"empty=",
        b"PATH=/other",
        b"=novalue",
        b"",
        b"eq=a=b",
    ]);
    assert_eq!(
        txt.0,
        vec![
            ("path".to_string(), Some("/api".to_string())),
            ("secure".to_string(), None),
            ("empty".to_string(), Some(String::new())),
            ("eq".to_string(), Some("a=b".to_string())),
        ]
    );
    assert_eq!(
        serde_json::to_value(&txt).unwrap(),
        serde_json::json!({"path": "/api", "secure": true, "empty": "", "eq": "a=b"})
    );
}

#[test]
fn duplicate_keys_keep_the_first_whatever_their_case() {
    let txt = parse_txt(&[b"Version=1", b"version=2", b"VERSION"]);
    assert_eq!(txt.0, vec![("version".to_string(), Some("1".to_string()))]);
}

#[test]
fn dns_sd_lines_are_tab_separated_and_escaped() {
    let (s, ttl) = srv(0, 0, 8080, "web-1.example.com.");
    let e = Endpoint::srv(
        &s,
        ttl,
        Some((
            "My\tPrinter".into(),
            parse_txt(&[b"path=/", b"tls", b"note=a\nb"]),
        )),
    );
    assert_eq!(
        e.lines(),
        ["web-1.example.com:8080\tMy\\tPrinter\tpath=/\ttls\tnote=a\\nb"]
    );
}

#[test]
fn addresses_print_with_brackets_only_before_a_port() {
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(Endpoint::address(v6, 60, None).lines(), ["2001:db8::1"]);
    assert_eq!(
        Endpoint::address(v6, 60, Some(443)).lines(),
        ["[2001:db8::1]:443"]
    );
    let v4: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(
        Endpoint::address(v4, 60, Some(80)).lines(),
        ["192.0.2.1:80"]
    );
}

#[test]
fn server_addresses_parse_with_port_53_by_default() {
    assert_eq!(
        parse_server("192.0.2.53").unwrap(),
        "192.0.2.53:53".parse().unwrap()
    );
    assert_eq!(
        parse_server("127.0.0.1:5353").unwrap(),
        "127.0.0.1:5353".parse().unwrap()
    );
    assert_eq!(parse_server("::1").unwrap(), "[::1]:53".parse().unwrap());
    assert_eq!(
        parse_server("[2001:db8::53]:5300").unwrap(),
        "[2001:db8::53]:5300".parse().unwrap()
    );
    assert!(parse_server("not-an-address").is_err());
    assert!(parse_server("ns.example.com:53").is_err());
}
