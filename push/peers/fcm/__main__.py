"""``python -m push.peers.fcm``: the emulator as a process (see the package docstring)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from pathlib import Path

import push.peers.fcm as package
from push.peers.fcm.server import FcmEmulator, accounts_from, new_service_account
from push.peers.inbox import Inbox
from push.peers.tls import local_tls


def main(argv: list[str] | None = None) -> int:
    description = (package.__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m push.peers.fcm", description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8444, help="0 picks a free port (printed on start)")
    parser.add_argument("--tls-dir", type=Path, help="folder of the local CA and certificate (made when missing)")
    parser.add_argument("--no-tls", action="store_true", help="plain HTTP (HTTP/1.1, or HTTP/2 prior knowledge)")
    parser.add_argument("--service-account", type=Path, action="append", default=[], help="accept this account")
    parser.add_argument("--new-service-account", type=Path, help="write a new account pointing here, and accept it")
    parser.add_argument("--project", default="demo-project", help="project id of --new-service-account")
    parser.add_argument("--slow-seconds", type=float, default=2.0, help="delay of slow- tokens")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds of quota-/unavailable-")
    parser.add_argument("--token-failure", type=int, help="make /token answer this HTTP status")
    parser.add_argument("--inbox-limit", type=int, default=100_000, help="records kept (oldest dropped first)")
    args = parser.parse_args(argv)
    if not args.no_tls and args.tls_dir is None:
        parser.error("--tls-dir is required unless --no-tls")
    accounts = [json.loads(path.read_text()) for path in args.service_account]
    lookups = [accounts_from(accounts)]
    context = None if args.no_tls else local_tls(args.tls_dir).server_context()
    emulator = FcmEmulator(
        lambda email: next((key for lookup in lookups if (key := lookup(email)) is not None), None),
        inbox=Inbox(limit=args.inbox_limit),
        host=args.host,
        port=args.port,
        ssl_context=context,
        slow_seconds=args.slow_seconds,
        retry_after=args.retry_after,
    )
    emulator.peer.token_failure = args.token_failure

    async def serve() -> None:
        await emulator.open()
        if args.new_service_account is not None:
            account = new_service_account(args.project, emulator.token_url)
            args.new_service_account.write_text(json.dumps(account, indent=2))
            args.new_service_account.chmod(0o600)
            lookups.append(accounts_from([account]))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        ca = f" (CA {args.tls_dir / 'ca.pem'})" if context is not None else ""
        print(f"FCM emulator listening on {emulator.base_url}{ca}; token_uri {emulator.token_url}", flush=True)
        await stop.wait()
        await emulator.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
