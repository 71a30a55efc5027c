"""An independent mDNS browser for dnsreg's responder tests: python-zeroconf
browses one service type on one interface and prints what it sees.

    zeroconf_browse.py IP TYPE SECONDS

Prints, one line each, flushed as they come, with the wall-clock time
(seconds since the epoch) the event was handled:
    added TIME NAME
    resolved TIME NAME SERVER PORT ADDR[,ADDR...] k=v[,k=v...]
    removed TIME NAME
and "done" after SECONDS (or at end of input, whichever is first).
"""
import sys
import threading
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf


def main():
    ip, type_, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    zc = Zeroconf(interfaces=[ip], ip_version=IPVersion.V4Only)

    def on_change(zeroconf, service_type, name, state_change):
        now = time.time()
        if state_change is ServiceStateChange.Added:
            print(f"added {now:.3f} {name}", flush=True)

            def resolve():
                info = zeroconf.get_service_info(service_type, name, timeout=3000)
                if info:
                    txt = ",".join(
                        f"{k.decode()}={(v or b'').decode()}" for k, v in info.properties.items()
                    )
                    addrs = ",".join(info.parsed_addresses())
                    print(
                        f"resolved {time.time():.3f} {name} {info.server} {info.port} {addrs} {txt}",
                        flush=True,
                    )

            threading.Thread(target=resolve, daemon=True).start()
        elif state_change is ServiceStateChange.Removed:
            print(f"removed {now:.3f} {name}", flush=True)

    browser = ServiceBrowser(zc, type_, handlers=[on_change])
    print("browsing", flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait(seconds)
    browser.cancel()
    zc.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
