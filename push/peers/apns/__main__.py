"""``python -m push.peers.apns``: the emulator as a process (see the package docstring)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from push.peers.apns.emulator import ApnsEmulator
from push.peers.apns.thread import key_lookup_from
from push.peers.inbox import Inbox
from push.peers.tls import local_tls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m push.peers.apns", description="Local APNs emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443, help="0 picks a free port (printed)")
    parser.add_argument("--tls-dir", type=Path, default=Path("instance/emulators/tls"))
    parser.add_argument("--topic", action="append", default=[], help="allowed topic (repeat); default any")
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="KEY_ID:TEAM_ID:PEM",
        help="verify JWTs of this key (public key or .p8); default: check form and age only",
    )
    parser.add_argument("--slow-delay", type=float, default=3.0, help="seconds before a d0000000 token is answered")
    parser.add_argument("--max-streams", type=int, default=1000, help="MAX_CONCURRENT_STREAMS announced")
    parser.add_argument("--inbox-limit", type=int, default=200_000)
    args = parser.parse_args(argv)

    keys: dict[tuple[str, str], bytes] = {}
    for spec in args.key:
        key_id, team_id, path = spec.split(":", 2)
        keys[(key_id, team_id)] = Path(path).read_bytes()
    tls = local_tls(args.tls_dir)
    emulator = ApnsEmulator(
        tls,
        inbox=Inbox(limit=args.inbox_limit),
        key_lookup=key_lookup_from(keys) if keys else None,
        topics=args.topic,
        slow_delay=args.slow_delay,
        max_concurrent_streams=args.max_streams,
    )

    async def serve() -> None:
        await emulator.start(args.host, args.port)
        print(f"APNs emulator listening on {emulator.url} (trust {tls.ca_path.resolve()})", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await emulator.stop()
        print(f"APNs emulator stopped after {emulator.handled} requests", flush=True)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
