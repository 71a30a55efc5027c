#!/usr/bin/env python3
"""Multicast DNS figures for scripts/bench (part `mdns`), on a segment of
network namespaces this script makes and deletes (root, iproute2):

    bench/mdns.py --dnsreg BIN --out FILE.json [--window S] [--runs N] [--later-runs N]

Hosts on one bridge, 10.54.54.0/24: h0 runs `dnsreg run` with an mdns
provider, h1 asks (dnsreg discover; avahi-browse through its own
avahi-daemon and D-Bus), h2 only listens and counts packets, h3 runs the
baseline publisher (avahi-daemon with a static service file, what user-data
writes today). Both publishers publish the same thing: `_http._tcp` port
8080, TXT path=/, and their host's address.

Measured:
  footprint        each publisher alone on the segment: resident memory,
                   threads, CPU over the idle window, and the packets it sends
                   (IPv4 and IPv6, counted by h2's listener): at start (the
                   settle period: probes, announcements) and per minute idle;
  discover         the time from starting the querier to its exit, with the
                   service already published: `dnsreg discover --one`, and
                   `avahi-browse -rptf` (the first run on a fresh avahi cache,
                   then on a warm one);
  publisher later  the querier waiting first, then the publisher starting:
                   the time from the publisher's start to the querier's exit,
                   `dnsreg discover --wait --one` for `dnsreg run`, and the
                   usual loop around `timeout 5 avahi-browse -rptf` for
                   avahi-daemon. The floor is RFC 6762 §8.1's: three probes
                   250 ms apart and 250 ms more before a responder may answer.

Prints progress on stderr; writes the figures as JSON to --out.
"""
import argparse
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SUBNET = "10.54.54"
SERVICE = "_http._tcp"
PORT = 8080
PROBE_FLOOR_MS = 750
HOSTS = 4
PUBLISHER, QUERIER, LISTENER, BASELINE = range(HOSTS)

LISTENER_PROGRAM = r"""
import select, socket, struct, sys, time
v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
v4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
v4.bind(("0.0.0.0", 5353))
v4.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
              socket.inet_aton("224.0.0.251") + socket.inet_aton(sys.argv[1]))
v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
v6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
v6.bind(("::", 5353))
v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
              socket.inet_pton(socket.AF_INET6, "ff02::fb") + struct.pack("@I", socket.if_nametoindex("eth0")))
print("listening", flush=True)
while True:
    for s in select.select([v4, v6], [], [])[0]:
        data, src = s.recvfrom(9000)
        kind = "response" if len(data) > 2 and data[2] & 0x80 else "query"
        print(f"{time.time():.6f} {src[0].split('%')[0]} {len(data)} {kind}", flush=True)
"""


def log(msg):
    print(f"bench mdns: {msg}", file=sys.stderr, flush=True)


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Segment:
    """A bridge namespace and HOSTS namespaces with an eth0 on it each."""

    def __init__(self, work):
        self.work = work
        tag = f"dnsreg-bench-mdns-{os.getpid()}"
        self.bridge = f"{tag}-br"
        self.hosts = []
        ip("netns", "add", self.bridge)
        ip("-n", self.bridge, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        ip("-n", self.bridge, "link", "set", "br0", "up")
        for i in range(HOSTS):
            ns = f"{tag}-{i}"
            ip("netns", "add", ns)
            self.hosts.append(ns)
            ip("-n", self.bridge, "link", "add", f"h{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("-n", self.bridge, "link", "set", f"h{i}", "master", "br0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")

    @staticmethod
    def addr(host):
        return f"{SUBNET}.{host + 1}"

    def sources(self, host):
        """Every address `host` may send from: its IPv4 and IPv6 ones."""
        out = subprocess.run(["ip", "-j", "-n", self.hosts[host], "addr", "show", "dev", "eth0"],
                             check=True, capture_output=True, text=True).stdout
        return {a["local"] for link in json.loads(out) for a in link.get("addr_info", [])}

    def popen(self, host, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(["ip", "netns", "exec", self.hosts[host], *argv], **kw)

    def close(self):
        for ns in [*self.hosts, self.bridge]:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


class Listener:
    """Host LISTENER's mDNS socket: every packet on the segment, with when and from whom."""

    def __init__(self, seg):
        self.packets = []
        self.lock = threading.Lock()
        self.proc = seg.popen(LISTENER, [sys.executable, "-c", LISTENER_PROGRAM, seg.addr(LISTENER)],
                              stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "listening":
            raise SystemExit("bench mdns: the packet listener did not start")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            t, src, size, kind = line.split()
            with self.lock:
                self.packets.append((float(t), src, int(size), kind))

    def count(self, sources, start, end):
        """Packets, bytes, and packets over IPv6, sent from `sources` in
        [start, end) (epoch seconds)."""
        with self.lock:
            mine = [p for p in self.packets if p[1] in sources and start <= p[0] < end]
        return len(mine), sum(p[2] for p in mine), sum(1 for p in mine if ":" in p[1])

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()[0] if value.split() else ""
    return {
        "rss_kib": int(fields["VmRSS"]),
        "rss_anon_kib": int(fields["RssAnon"]),
        "rss_file_kib": int(fields["RssFile"]),
        "threads": int(fields["Threads"]),
    }


def cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        # The fields after the command name, which is in parentheses.
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def stop(proc, limit=10):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def summary(ms):
    ordered = sorted(ms)
    return {
        "runs": len(ordered),
        "median_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered) + 0.5) - 1)], 1),
        "min_ms": round(ordered[0], 1),
        "max_ms": round(ordered[-1], 1),
    }


class Bench:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.seg = Segment(work)
        try:
            self.listener = Listener(self.seg)
        except BaseException:
            self.seg.close()
            raise
        self.bus = None
        self.querier_avahi = None

    # --- the publishers ---------------------------------------------------------

    def start_agent(self):
        """`dnsreg run` in host PUBLISHER, publishing the service."""
        config = os.path.join(self.work, "dnsreg.toml")
        with open(config, "w") as f:
            f.write(f"""[instance]
metadata = "none"
id = "bench-publisher"
ipv4 = "{self.seg.addr(PUBLISHER)}"

[providers.lan]
type = "mdns"
interfaces = ["eth0"]

[[service]]
providers = ["lan"]
type = "{SERVICE}"
instance = "bench"
port = {PORT}
txt = {{ path = "/" }}

[agent]
reconcile_interval = "20s"
stop_timeout = "5s"
state_dir = "{self.work}/state"
""")
        logf = open(os.path.join(self.work, "agent.log"), "a")
        return self.seg.popen(PUBLISHER, [self.args.dnsreg, "-c", config, "run"], stdout=logf, stderr=logf)

    def start_avahi(self, host, name, services, dbus):
        """avahi-daemon in `host`, in a mount namespace of its own (a tmpfs over
        /run, the static service files bound over /etc/avahi/services), with
        D-Bus on the bus at `dbus` or without."""
        d = os.path.join(self.work, f"avahi-{name}")
        os.makedirs(os.path.join(d, "services"), exist_ok=True)
        with open(os.path.join(d, "avahi-daemon.conf"), "w") as f:
            f.write(f"[server]\nhost-name={name}\nuse-ipv4=yes\nuse-ipv6=yes\nallow-interfaces=eth0\n"
                    f"enable-dbus={'yes' if dbus else 'no'}\n[wide-area]\nenable-wide-area=no\n"
                    "[publish]\npublish-hinfo=no\npublish-workstation=no\n")
        if services:
            with open(os.path.join(d, "services", "http.service"), "w") as f:
                f.write(f"""<?xml version="1.0" standalone='no'?>
<!DOCTYPE service-group SYSTEM "avahi-service.dtd">
<service-group>
  <name>bench</name>
  <service><type>{SERVICE}</type><port>{PORT}</port><txt-record>path=/</txt-record></service>
</service-group>
""")
        env = dict(os.environ)
        if dbus:
            env["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={dbus}"
        logf = open(os.path.join(d, "log"), "a")
        return self.seg.popen(host, [
            "sh", "-c",
            'mount -t tmpfs tmpfs /run && mkdir /run/avahi-daemon '
            '&& mount --bind "$1/services" /etc/avahi/services '
            '&& exec avahi-daemon -f "$1/avahi-daemon.conf" --no-drop-root --no-chroot --no-rlimits',
            "sh", d], stdout=logf, stderr=logf, env=env)

    def start_querier_avahi(self):
        """A D-Bus system bus of its own and an avahi-daemon on it in host
        QUERIER: what avahi-browse talks to."""
        sock = os.path.join(self.work, "bus")
        conf = os.path.join(self.work, "bus.conf")
        with open(conf, "w") as f:
            f.write(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
""")
        self.bus = subprocess.Popen(["dbus-daemon", "--config-file", conf, "--nofork", "--print-address"],
                                    stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                    stderr=open(os.path.join(self.work, "dbus.log"), "a"))
        self.bus.stdout.readline()
        self.querier_avahi = self.start_avahi(QUERIER, "bench-querier", services=False, dbus=sock)
        self.dbus_sock = sock
        deadline = time.monotonic() + 20
        # Asked for another type: the service itself stays out of its cache
        # until the first measured run.
        while self.avahi_browse("_dnsreg-bench-ready._tcp")[0] != 0:
            if time.monotonic() > deadline:
                raise SystemExit("bench mdns: avahi-browse did not reach the querier's avahi-daemon")
            time.sleep(0.2)

    # --- the queriers -----------------------------------------------------------

    def bus_env(self):
        """The environment of a D-Bus client of the querier's bus."""
        return dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={self.dbus_sock}")

    def discover(self, *extra):
        p = self.seg.popen(QUERIER, [self.args.dnsreg, "discover", *extra, "--one", f"{SERVICE}.local"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return p

    def avahi_browse(self, service=SERVICE):
        """One `avahi-browse -rptf`: its exit code, the ms to its first resolved
        line and to its exit, and the resolved lines."""
        start = time.monotonic()
        p = subprocess.Popen(["avahi-browse", "-rptf", service], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=self.bus_env(),
                             text=True)
        first, resolved = None, []
        for line in p.stdout:
            if line.startswith("="):
                first = first or (time.monotonic() - start) * 1000
                resolved.append(line.strip())
        rc = p.wait()
        return rc, first, (time.monotonic() - start) * 1000, resolved

    # --- the parts --------------------------------------------------------------

    def footprint(self, name, start):
        """Starts a publisher, lets it settle, then watches it idle."""
        host = PUBLISHER if name == "dnsreg" else BASELINE
        sources = self.seg.sources(host)
        t0 = time.time()
        proc = start()
        time.sleep(self.args.settle)
        if proc.poll() is not None:
            raise SystemExit(f"bench mdns: {name} exited during the settle period (logs in {self.work})")
        pid = proc.pid
        c0, t1 = cpu_ms(pid), time.time()
        time.sleep(self.args.window)
        c1, t2 = cpu_ms(pid), time.time()
        status = proc_status(pid)
        time.sleep(0.5)  # the listener's last lines
        start_packets, start_bytes, start_v6 = self.listener.count(sources, t0, t1)
        idle_packets, idle_bytes, idle_v6 = self.listener.count(sources, t1, t2)
        idle_s = t2 - t1
        result = dict(status, cpu_ms=round(c1 - c0), window_s=round(idle_s, 1),
                      start_packets=start_packets, start_packets_ipv6=start_v6, start_bytes=start_bytes,
                      settle_s=self.args.settle,
                      idle_packets=idle_packets, idle_packets_ipv6=idle_v6, idle_bytes=idle_bytes,
                      idle_packets_per_min=round(idle_packets * 60 / idle_s, 2))
        log(f"{name}: {result}")
        return proc, result

    def discover_times(self):
        ms = []
        for _ in range(self.args.runs):
            start = time.monotonic()
            p = self.discover()
            out, err = p.communicate(timeout=30)
            ms.append((time.monotonic() - start) * 1000)
            if p.returncode != 0 or f":{PORT}" not in out:
                raise SystemExit(f"bench mdns: discover failed ({p.returncode}): {out}{err}")
        result = summary(ms)
        log(f"dnsreg discover: {result}")
        return result

    def avahi_browse_times(self):
        first_run, first_ms, exit_ms = None, [], []
        for i in range(self.args.runs):
            rc, first, total, resolved = self.avahi_browse()
            if rc != 0 or not any(f";{self.seg.addr(PUBLISHER)};{PORT};" in r for r in resolved):
                raise SystemExit(f"bench mdns: avahi-browse did not resolve the service ({rc}): {resolved}")
            if i == 0:
                first_run = {"first_answer_ms": round(first, 1), "exit_ms": round(total, 1)}
            else:
                first_ms.append(first)
                exit_ms.append(total)
        result = {"cold": first_run, "warm": summary(exit_ms), "warm_first_answer": summary(first_ms)}
        log(f"avahi-browse: {result}")
        return result

    def later_dnsreg(self):
        ms = []
        for _ in range(self.args.later_runs):
            q = self.discover("--wait", "30s")
            time.sleep(1)  # its first rounds find nothing
            start = time.monotonic()
            agent = self.start_agent()
            out, err = q.communicate(timeout=40)
            ms.append((time.monotonic() - start) * 1000)
            stop(agent)
            if q.returncode != 0 or f":{PORT}" not in out:
                raise SystemExit(f"bench mdns: discover --wait failed ({q.returncode}): {out}{err}")
        result = summary(ms)
        log(f"publisher later, dnsreg: {result}")
        return result

    def later_avahi(self):
        at = f";{self.seg.addr(BASELINE)};{PORT};"
        loop = (f"until timeout 5 avahi-browse -rptf {SERVICE} | grep -qF '{at}'; "
                "do sleep 1; done")
        ms = []
        for _ in range(self.args.later_runs):
            q = subprocess.Popen(["sh", "-c", loop], env=self.bus_env(), stdin=subprocess.DEVNULL)
            time.sleep(1)
            start = time.monotonic()
            publisher = self.start_avahi(BASELINE, "bench-baseline", services=True, dbus=None)
            q.wait(timeout=60)
            ms.append((time.monotonic() - start) * 1000)
            stop(publisher)
            # Until the goodbyes have emptied the querier's cache: else the
            # next run would find what this one published.
            deadline = time.monotonic() + 10
            while any(at in r for r in self.avahi_browse()[3]):
                if time.monotonic() > deadline:
                    raise SystemExit("bench mdns: avahi-browse still lists the stopped publisher after 10 s")
        result = summary(ms)
        log(f"publisher later, avahi-daemon + avahi-browse loop: {result}")
        return result

    def run(self):
        a = self.args
        log(f"footprint of dnsreg run (mdns provider): {a.settle}s to settle, {a.window}s idle")
        agent, dnsreg_fp = self.footprint("dnsreg", self.start_agent)
        log(f"footprint of avahi-daemon with a static service file: {a.settle}s to settle, {a.window}s idle")
        avahi, avahi_fp = self.footprint(
            "avahi-daemon", lambda: self.start_avahi(BASELINE, "bench-baseline", services=True, dbus=None))
        stop(avahi)
        time.sleep(2)
        log(f"discover with the service published, {a.runs} runs each")
        discover = self.discover_times()
        self.start_querier_avahi()
        browse = self.avahi_browse_times()
        stop(agent)
        log(f"publisher starting after the querier, {a.later_runs} runs each")
        later_dnsreg = self.later_dnsreg()
        later_avahi = self.later_avahi()
        return {
            "segment": f"{HOSTS} network namespaces on one bridge, IPv4 {SUBNET}.0/24 and IPv6 link-local",
            "service": f"{SERVICE} port {PORT}, TXT path=/, and the publisher's host address",
            "agent_reconcile_interval_s": 20,
            "footprint": {"dnsreg": dnsreg_fp, "avahi_daemon": avahi_fp},
            "discover": {"dnsreg": discover, "avahi_browse": browse},
            "publisher_later": {"floor_ms": PROBE_FLOOR_MS, "dnsreg": later_dnsreg, "avahi": later_avahi},
            "versions": {"avahi": package_version("avahi-daemon")},
        }

    def close(self):
        for p in (self.querier_avahi, self.bus):
            if p:
                stop(p)
        self.listener.stop()
        self.seg.close()


def package_version(pkg):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dnsreg", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--window", type=float, default=60)
    p.add_argument("--settle", type=float, default=10)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--later-runs", type=int, default=10)
    args = p.parse_args()
    args.dnsreg = os.path.abspath(args.dnsreg)
    if os.geteuid() != 0:
        raise SystemExit("bench mdns: network namespaces need root (run scripts/bench as root, or leave out mdns)")
    # Kept when something fails: the publishers' logs are in it.
    work = tempfile.mkdtemp(prefix="dnsreg-bench-mdns-")
    bench = Bench(args, work)
    try:
        result = bench.run()
    finally:
        bench.close()
    shutil.rmtree(work)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
