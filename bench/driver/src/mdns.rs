//! The multicast DNS tables, from the JSON `bench/mdns.py` writes (part
//! `mdns` of `scripts/bench`, passed here as `--mdns FILE`).

use std::fmt::Write as _;

use serde_json::Value as Json;

use crate::num;

fn mib(kib: &Json) -> String {
    format!("{:.1}", num(kib) / 1024.0)
}

fn ms(v: &Json) -> String {
    format!("{:.0} ms", num(v))
}

fn footprint_row(s: &mut String, who: &str, f: &Json) {
    let _ = writeln!(
        s,
        "| {who} | {} MiB ({} + {}) | {} | {} ms | {} ({} over IPv6) | {} ({} over IPv6) |",
        mib(&f["rss_kib"]),
        mib(&f["rss_anon_kib"]),
        mib(&f["rss_file_kib"]),
        f["threads"],
        f["cpu_ms"],
        f["start_packets"],
        f["start_packets_ipv6"],
        f["idle_packets_per_min"],
        f["idle_packets_ipv6"],
    );
}

fn timing_row(s: &mut String, who: &str, t: &Json, against: &str, base: f64) {
    let _ = writeln!(
        s,
        "| {who} | {} | {} | {} – {} | {:.2}× {against} |",
        ms(&t["median_ms"]),
        ms(&t["p95_ms"]),
        ms(&t["min_ms"]),
        ms(&t["max_ms"]),
        num(&t["median_ms"]) / base,
    );
}

/// The section, when the results have one.
pub fn markdown(r: &Json, s: &mut String) {
    let m = &r["mdns"];
    if !m.is_object() {
        return;
    }
    let fp = &m["footprint"];
    let avahi = m["versions"]["avahi"].as_str().unwrap_or("?");
    let _ = writeln!(
        s,
        "\n### Multicast DNS on one segment\n\n\
         Network namespaces on one bridge (`bench/mdns.py`). Each publisher publishes {}; packets \
         are counted by a listener on another host of the segment, over IPv4 and IPv6.\n\n\
         Publishers, each alone on the segment ({} s to start, then {} s idle; dnsreg reconciles \
         every {} s):\n\n\
         | publisher | resident memory (anonymous + file-backed) | threads | CPU idle | packets sent while starting | packets per minute idle |\n\
         |---|---|---|---|---|---|",
        m["service"].as_str().unwrap_or("?"),
        fp["dnsreg"]["settle_s"],
        fp["dnsreg"]["window_s"],
        m["agent_reconcile_interval_s"],
    );
    footprint_row(s, "`dnsreg run`, an mdns provider", &fp["dnsreg"]);
    footprint_row(
        s,
        &format!("avahi-daemon {avahi}, a static service file"),
        &fp["avahi_daemon"],
    );

    let d = &m["discover"];
    let browse = &d["avahi_browse"];
    let warm = num(&browse["warm"]["median_ms"]);
    let _ = writeln!(
        s,
        "\nFinding the published service, from the querier's start to its exit ({} runs; \
         avahi-browse asks an avahi-daemon of its own on the querying host, over D-Bus):\n\n\
         | querier | median | p95 | range | ratio |\n|---|---|---|---|---|",
        d["dnsreg"]["runs"],
    );
    timing_row(
        s,
        "`dnsreg discover --one _http._tcp.local`",
        &d["dnsreg"],
        "avahi-browse",
        warm,
    );
    timing_row(
        s,
        &format!(
            "`avahi-browse -rptf _http._tcp`, its daemon's cache warm (first answer line after {})",
            ms(&browse["warm_first_answer"]["median_ms"])
        ),
        &browse["warm"],
        "avahi-browse",
        warm,
    );
    let cold = &browse["cold"];
    let _ = writeln!(
        s,
        "| `avahi-browse -rptf _http._tcp`, first run, its daemon's cache empty (first answer line after {}) | {} | | | |",
        ms(&cold["first_answer_ms"]),
        ms(&cold["exit_ms"]),
    );

    let later = &m["publisher_later"];
    let floor = num(&later["floor_ms"]);
    let _ = writeln!(
        s,
        "\nThe publisher starting after the querier waits, from the publisher's start to the querier's \
         exit ({} runs). The floor is RFC 6762 §8.1's: three probes 250 ms apart, and 250 ms more, \
         before a responder may answer ({floor:.0} ms):\n\n\
         | publisher and querier | median | p95 | range | ratio |\n|---|---|---|---|---|",
        later["dnsreg"]["runs"],
    );
    timing_row(
        s,
        "`dnsreg run` and `dnsreg discover --wait --one _http._tcp.local`",
        &later["dnsreg"],
        "the floor",
        floor,
    );
    timing_row(
        s,
        "avahi-daemon with a static service file, and `until timeout 5 avahi-browse -rptf _http._tcp \\| grep …; do sleep 1; done`",
        &later["avahi"],
        "the floor",
        floor,
    );
}
