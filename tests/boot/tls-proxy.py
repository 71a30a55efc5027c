#!/usr/bin/env python3
"""TLS in front of the plain-http stand-ins, for the machine scripts/boot-test boots.

dnsreg sends credentials only over TLS (plain http only to loopback), and the
booted machine reaches the stand-ins over a veth pair, not loopback. So the
machine is configured with https endpoints at this proxy's address (the
user-data's ROUTE53_ENDPOINT / CLOUDFLARE_ENDPOINT), trusts the test CA that
signed this certificate (installed with update-ca-certificates), and this
forwards each connection, decrypted, to a stand-in on loopback.

--delay holds every answer back that long: the guest then needs several round
trips of at least that long to leave, which it only gets if the network is
still up, so that a unit stopped in parallel with (rather than before) the
network loses every time instead of only usually.

Each line of the log: monotonic-ish wall time, connection number, event.
"""

import argparse
import asyncio
import ssl
import sys
import time


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {message}", flush=True)


async def pipe(reader, writer, delay: float, counter: list) -> None:
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            if delay:
                await asyncio.sleep(delay)
            writer.write(chunk)
            await writer.drain()
            counter[0] += len(chunk)
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, ssl.SSLError, OSError):
            pass


def handler(name: str, upstream: tuple, delay: float):
    number = [0]

    async def handle(client_reader, client_writer) -> None:
        number[0] += 1
        conn = f"{name}#{number[0]}"
        peer = client_writer.get_extra_info("peername")
        try:
            up_reader, up_writer = await asyncio.open_connection(*upstream)
        except OSError as error:
            log(f"{conn} from {peer[0]}: upstream {upstream[0]}:{upstream[1]} unreachable: {error}")
            client_writer.close()
            return
        log(f"{conn} from {peer[0]}: open")
        sent, received = [0], [0]
        await asyncio.gather(
            pipe(client_reader, up_writer, 0, sent),
            pipe(up_reader, client_writer, delay, received),
        )
        log(f"{conn}: closed ({sent[0]} bytes up, {received[0]} down)")

    return handle


def address(text: str) -> tuple:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", required=True, help="certificate chain (PEM)")
    parser.add_argument("--key", required=True, help="its private key (PEM)")
    parser.add_argument(
        "--forward",
        action="append",
        required=True,
        metavar="NAME=LISTEN=UPSTREAM",
        help="e.g. route53=192.0.2.1:443=127.0.0.1:18053 (repeatable)",
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to hold each answer back")
    parser.add_argument("--ready-file", help="written once every listener is up")
    args = parser.parse_args()

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    servers = []
    for spec in args.forward:
        name, listen, upstream = spec.split("=")
        host, port = address(listen)
        server = await asyncio.start_server(handler(name, address(upstream), args.delay), host, port, ssl=context)
        servers.append(server)
        log(f"{name}: https://{listen} -> http://{upstream} (answers held {args.delay}s)")
    if args.ready_file:
        with open(args.ready_file, "w") as ready:
            ready.write("ready\n")
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
