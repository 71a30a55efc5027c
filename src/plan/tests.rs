use super::*;
use crate::config::parse;

fn vars() -> Vars {
    Vars {
        instance_id: "i-0abc".into(),
        hostname: Some("ip-10-0-0-5.ec2.internal".into()),
        region: Some("eu-west-1".into()),
        ipv4: "198.51.100.20".parse().unwrap(),
        ipv6: None,
    }
}

fn zone() -> DomainName {
    DomainName::new("example.com").unwrap()
}

const BASE: &str = "[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n";

#[test]
fn the_original_scripts_records() {
    let c = crate::config::from_flags(&crate::config::Flags {
        provider: "route53".into(),
        zone: Some("example.com".into()),
        service: Some("_v1._theservice._tcp".into()),
        port: Some(8080),
        ..Default::default()
    })
    .unwrap();
    let lines: Vec<String> = desired(&c, "route53", &zone(), &vars())
        .unwrap()
        .records
        .iter()
        .map(|r| r.value.to_line())
        .collect();
    assert_eq!(
        lines,
        vec![
            "198-51-100-20.example.com. A 198.51.100.20",
            "_v1._theservice._tcp.example.com. SRV 0 0 8080 198-51-100-20.example.com.",
        ]
    );
}

#[test]
fn dns_sd_gives_ptr_srv_and_txt() {
    let text = format!(
        "{BASE}[[host]]\nproviders=[\"r53\"]\nname=\"{{instance_id}}\"\n[[service]]\nproviders=[\"r53\"]\ntype=\"_http._tcp\"\ninstance=\"{{hostname}}\"\nport=80\ntxt={{path=\"/\"}}\n"
    );
    let c = parse("t", &text).unwrap();
    let lines: Vec<String> = desired(&c, "r53", &zone(), &vars())
        .unwrap()
        .records
        .iter()
        .map(|r| r.value.to_line())
        .collect();
    assert!(
        lines.contains(
            &"_http._tcp.example.com. PTR ip-10-0-0-5._http._tcp.example.com.".to_string()
        ),
        "{lines:?}"
    );
    assert!(lines.contains(
        &"ip-10-0-0-5._http._tcp.example.com. SRV 0 0 80 i-0abc.example.com.".to_string()
    ));
    assert!(lines.contains(&"ip-10-0-0-5._http._tcp.example.com. TXT \"path=/\"".to_string()));
}

#[test]
fn names_outside_the_zone_are_refused_before_any_network_call() {
    let text = format!("{BASE}[[round_robin]]\nproviders=[\"r53\"]\nname=\"www.other.org.\"\n");
    let e = parse("t.toml", &text).unwrap_err();
    assert_eq!(e.problems[0].line, Some(4));
    assert!(e.problems[0].message.contains("outside the zone"), "{e}");
}

#[test]
fn srv_targets_must_be_published() {
    let text = format!(
        "{BASE}[[srv]]\nproviders=[\"r53\"]\nname=\"_a._tcp\"\nport=1\ntarget=\"{{instance_id}}\"\n"
    );
    let e = parse("t.toml", &text).unwrap_err();
    assert_eq!(e.problems[0].key, "srv[0].target");
    assert!(
        e.problems[0]
            .message
            .contains("not a name this configuration publishes"),
        "{e}"
    );
}

#[test]
fn colliding_records_are_refused() {
    let text = format!(
        "{BASE}[[host]]\nproviders=[\"r53\"]\nname=\"www\"\n[[round_robin]]\nproviders=[\"r53\"]\nname=\"www\"\n"
    );
    let e = parse("t.toml", &text).unwrap_err();
    assert!(e.problems[0].message.contains("collide"), "{e}");
}

#[test]
fn registry_names_live_in_one_subtree() {
    assert_eq!(
        crate::registry::name(&zone(), "i-0ABC").unwrap().as_str(),
        "i-0abc._dnsreg.example.com."
    );
    assert!(crate::registry::name(&zone(), "web 1").is_err());
    let text = format!("{BASE}[[round_robin]]\nproviders=[\"r53\"]\nname=\"x._dnsreg\"\n");
    assert!(
        parse("t", &text)
            .unwrap_err()
            .to_string()
            .contains("ownership registry")
    );
}

fn lines(d: &Desired) -> Vec<String> {
    d.records.iter().map(|r| r.value.to_line()).collect()
}

#[test]
fn every_template_variable_is_this_instance_s_value() {
    let text = format!(
        "{BASE}[[host]]\nproviders=[\"r53\"]\nname=\"{{instance_id}}\"\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"h-{{hostname}}\"\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"{{region}}\"\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"{{ipv4_dashed}}\"\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"{{ipv4}}\"\n"
    );
    let c = parse("t", &text).unwrap();
    assert_eq!(
        lines(&desired(&c, "r53", &zone(), &vars()).unwrap()),
        [
            "198-51-100-20.example.com. A 198.51.100.20",
            "198.51.100.20.example.com. A 198.51.100.20",
            "eu-west-1.example.com. A 198.51.100.20",
            "h-ip-10-0-0-5.example.com. A 198.51.100.20",
            "i-0abc.example.com. A 198.51.100.20",
        ]
    );
    // An instance without a region cannot publish a name made of it:
    // refused with the key, before anything is written.
    let no_region = Vars {
        region: None,
        ..vars()
    };
    let problems = desired(&c, "r53", &zone(), &no_region).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "host[2].name");
    assert!(problems[0].1.contains("needs {region}"), "{problems:?}");
}

#[test]
fn a_provider_plans_only_its_own_specs_and_srv_targets_it_publishes() {
    let two = format!(
        "{BASE}[providers.cf]\ntype = \"cloudflare\"\nzone = \"example.com\"\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"a\"\n\
             [[host]]\nproviders=[\"cf\"]\nname=\"b\"\n\
             [[srv]]\nproviders=[\"cf\"]\nname=\"_b._tcp\"\nport=1\ntarget=\"b\"\n"
    );
    let c = parse("t", &two).unwrap();
    assert_eq!(
        lines(&desired(&c, "r53", &zone(), &vars()).unwrap()),
        ["a.example.com. A 198.51.100.20"]
    );
    assert_eq!(
        lines(&desired(&c, "cf", &zone(), &vars()).unwrap()),
        [
            "_b._tcp.example.com. SRV 0 0 1 b.example.com.",
            "b.example.com. A 198.51.100.20",
        ]
    );
    // An SRV through r53 whose target only cf publishes points at a name
    // r53's zone may not have.
    let text =
        format!("{two}[[srv]]\nproviders=[\"r53\"]\nname=\"_a._tcp\"\nport=1\ntarget=\"b\"\n");
    let e = parse("t", &text).unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
    assert_eq!(e.problems[0].key, "srv[1].target");
    assert!(e.problems[0].message.contains("through `r53`"), "{e}");
}

#[test]
fn a_shared_value_written_twice_collides_and_different_ones_share_a_name() {
    // Two round robins of one name would write the same address twice.
    let text = format!(
        "{BASE}[[round_robin]]\nproviders=[\"r53\"]\nname=\"www\"\n\
             [[round_robin]]\nproviders=[\"r53\"]\nname=\"www\"\n"
    );
    let e = parse("t", &text).unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
    assert_eq!(e.problems[0].key, "round_robin[1]");
    assert!(
            e.problems[0].message.contains(
                "round_robin[0] also writes www.example.com. A; the records of round_robin[0] and round_robin[1] collide"
            ),
            "{e}"
        );
    // Two hosts of one name: each would own the rrset.
    let text = format!(
        "{BASE}[[host]]\nproviders=[\"r53\"]\nname=\"www\"\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"www\"\n"
    );
    assert!(
        parse("t", &text)
            .unwrap_err()
            .to_string()
            .contains("collide")
    );
    // Two SRV records of one service name with different targets are
    // its two values, which the rrset shares.
    let text = format!(
        "{BASE}[[host]]\nproviders=[\"r53\"]\nname=\"a\"\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"b\"\n\
             [[srv]]\nproviders=[\"r53\"]\nname=\"_x._tcp\"\nport=1\ntarget=\"a\"\n\
             [[srv]]\nproviders=[\"r53\"]\nname=\"_x._tcp\"\nport=2\ntarget=\"b\"\n"
    );
    let c = parse("t", &text).unwrap();
    let d = desired(&c, "r53", &zone(), &vars()).unwrap();
    assert_eq!(
        lines(&d),
        [
            "_x._tcp.example.com. SRV 0 0 1 a.example.com.",
            "_x._tcp.example.com. SRV 0 0 2 b.example.com.",
            "a.example.com. A 198.51.100.20",
            "b.example.com. A 198.51.100.20",
        ]
    );
}

#[test]
fn only_a_host_s_rrsets_are_this_instance_s_alone() {
    let text = format!(
        "{BASE}[instance]\nipv6 = true\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"a\"\n\
             [[round_robin]]\nproviders=[\"r53\"]\nname=\"www\"\n"
    );
    let c = parse("t", &text).unwrap();
    let v6 = Vars {
        ipv6: Some("2001:db8::20".parse().unwrap()),
        ..vars()
    };
    let d = desired(&c, "r53", &zone(), &v6).unwrap();
    assert_eq!(
        lines(&d),
        [
            "a.example.com. A 198.51.100.20",
            "a.example.com. AAAA 2001:db8::20",
            "www.example.com. A 198.51.100.20",
            "www.example.com. AAAA 2001:db8::20",
        ]
    );
    // The round robin's rrsets are shared with other instances: writing
    // them whole would remove the others' addresses.
    let exclusive: Vec<String> = d.exclusive.iter().map(ToString::to_string).collect();
    assert_eq!(exclusive, ["a.example.com. A", "a.example.com. AAAA"]);
}

#[test]
fn a_zone_given_by_id_takes_absolute_names_and_still_refuses_collisions() {
    let by_id = "[providers.r53]\ntype = \"route53\"\nzone_id = \"Z0123456789ABC\"\n";
    // The zone's name is learnt at connect: an absolute name cannot be
    // checked against it before, and is not refused (the engine plans
    // it again once connected).
    let text = format!("{by_id}[[host]]\nproviders=[\"r53\"]\nname=\"www.example.com.\"\n");
    let c = parse("t", &text).unwrap();
    assert!(check_sample(&c).is_empty());
    // Relative names are checked, against a stand-in zone.
    let text = format!(
        "{by_id}[[host]]\nproviders=[\"r53\"]\nname=\"www\"\n\
             [[round_robin]]\nproviders=[\"r53\"]\nname=\"www\"\n"
    );
    let e = parse("t", &text).unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
    assert!(e.problems[0].message.contains("collide"), "{e}");
}
