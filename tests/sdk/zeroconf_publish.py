"""An independent mDNS responder for dnsreg's multicast discover tests:
python-zeroconf registers DNS-SD instances on one interface, and takes
orders on stdin.

    zeroconf_publish.py IP[,IP...] TYPE HOST NAME:PORT:PRIORITY:WEIGHT[:k=v,...] ...

Registers each instance (host HOST.local. at the IPs, IPv4 and IPv6; TXT
k=v pairs), answering on the interfaces of those IPs, printing
"registered NAME" once each is announced. Then reads stdin: "unregister NAME"
sends that instance's goodbye and prints "unregistered NAME"; at end of input
everything is unregistered and it prints "closed".
"""
import socket
import sys

from zeroconf import IPVersion, ServiceInfo, Zeroconf


def main():
    ips, type_, host = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
    v6 = any(":" in ip for ip in ips)
    zc = Zeroconf(interfaces=ips, ip_version=IPVersion.All if v6 else IPVersion.V4Only)
    packed = [socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip) for ip in ips]
    infos = {}
    for spec in sys.argv[4:]:
        name, port, prio, weight, *rest = spec.split(":")
        props = dict(kv.split("=", 1) for kv in rest[0].split(",")) if rest else {}
        info = ServiceInfo(
            type_,
            f"{name}.{type_}",
            port=int(port),
            priority=int(prio),
            weight=int(weight),
            server=f"{host}.local.",
            addresses=packed,
            properties=props,
        )
        zc.register_service(info, allow_name_change=False)
        infos[name] = info
        print(f"registered {name}", flush=True)
    for line in sys.stdin:
        verb, _, name = line.strip().partition(" ")
        if verb == "unregister" and name in infos:
            zc.unregister_service(infos.pop(name))
            print(f"unregistered {name}", flush=True)
    zc.unregister_all_services()
    zc.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main()
