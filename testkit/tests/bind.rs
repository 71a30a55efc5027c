//! The BIND harness itself: named starts, takes signed updates, and shows them.

use testkit::bind::{Bind, BindOptions};

#[test]
fn named_takes_a_signed_update_and_shows_it_to_dig_and_axfr() {
    let bind = Bind::start();
    assert_eq!(bind.records(), Vec::<String>::new());
    bind.nsupdate(
        "update add www.example.com. 60 A 192.0.2.1\nupdate add www.example.com. 60 A 192.0.2.2",
    );
    assert_eq!(
        bind.values("www.example.com.", "A"),
        ["192.0.2.1", "192.0.2.2"]
    );
    assert_eq!(bind.ttl("www.example.com.", "A"), Some(60));
    assert_eq!(
        bind.records(),
        [
            "www.example.com. 60 A 192.0.2.1",
            "www.example.com. 60 A 192.0.2.2"
        ]
    );
    bind.nsupdate("update delete www.example.com. A 192.0.2.1");
    assert_eq!(bind.values("www.example.com.", "A"), ["192.0.2.2"]);
}

#[test]
fn two_servers_run_side_by_side_with_their_own_keys_and_zones() {
    let a = Bind::start();
    let b = Bind::start_with(BindOptions {
        zones: vec!["example.test".into(), "other.test".into()],
        algorithm: "hmac-sha512".into(),
        ..BindOptions::default()
    });
    assert_ne!(a.addr(), b.addr());
    b.nsupdate("update add x.example.test. 30 TXT \"hello\"");
    assert_eq!(b.values("x.example.test.", "TXT"), ["\"hello\""]);
    assert!(a.values("x.example.test.", "TXT").is_empty());
    assert!(
        std::fs::read_to_string(b.key_file())
            .unwrap()
            .contains("hmac-sha512")
    );
}
