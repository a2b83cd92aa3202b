"""Profile the Classic Android registration request path in one process, without HTTP.

Companion to ``bench/registration.py``: the same fresh SQLite (WAL) database, app, profiles and
exact SDK bodies, but each request is handed straight to the WSGI callable (a prebuilt environ, as
gunicorn would pass it), once for the gateway and once for the bare baseline route, so the
figures are the applications' own cost per request. With ``--profile`` the gateway's requests run
under cProfile and the top functions are printed (by cumulative and by own time).

    python bench/profile_registration.py                    # per-request time of both apps
    python bench/profile_registration.py --profile --top 40 # plus the gateway's profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import remove_workdir  # noqa: E402
from bench.registration_fixture import FORM, REGISTER_PATH, Fixture, make_bodies, prepare_database  # noqa: E402

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def environ_for(body: bytes) -> dict[str, Any]:
    """What gunicorn hands the app for one keep-alive POST (the headers the Android SDK sends)."""
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": REGISTER_PATH,
        "RAW_URI": REGISTER_PATH,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "CONTENT_TYPE": FORM,
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 6 Build/UQ1A.240205.004)",
        "HTTP_CONNECTION": "keep-alive",
        "HTTP_ACCEPT_ENCODING": "gzip",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def drive(app: WSGIApp, bodies: list[bytes]) -> float:
    """Call the app once per body; returns seconds. Any status but 200 stops the run."""
    environs = [environ_for(body) for body in bodies]
    statuses: list[str] = []

    def start_response(status: str, _headers: Any, _exc_info: Any = None) -> Callable[[bytes], None]:
        statuses.append(status)
        return lambda _data: None

    started = time.perf_counter()
    for environ in environs:
        result = app(environ, start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    elapsed = time.perf_counter() - started
    bad = [s for s in statuses if not s.startswith("200")]
    if bad:
        raise SystemExit(f"{len(bad)} requests failed, first: {bad[0]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/profile_registration.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=3000, help="requests per app (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured requests per app before them")
    parser.add_argument("--profiles", type=int, default=1000, help="profiles created before the run")
    parser.add_argument("--known-user-share", type=float, default=0.5, help="share of userKeys matching a profile")
    parser.add_argument("--profile", action="store_true", help="run the gateway's requests under cProfile")
    parser.add_argument("--top", type=int, default=30, help="functions to print per profile listing")
    parser.add_argument("--sort", default="cumulative,tottime", help="pstats sort keys, one listing each")
    parser.add_argument("--dump", default="", help="also write the raw profile to this file (for snakeviz etc.)")
    args = parser.parse_args(argv)

    from cryptography.fernet import Fernet

    from bench.baseline_app import create_baseline_app
    from gateway.app import create_app

    workdir = Path(tempfile.mkdtemp(prefix="pushgate-profile-"))
    try:
        fx = Fixture(
            database_url=f"sqlite:///{workdir / 'instance' / 'pushgate.db'}",
            instance_path=workdir / "instance",
            secret_key=Fernet.generate_key().decode(),
            run_id=uuid.uuid4().hex[:8],
        )
        prepare_database(fx, args.profiles)
        gateway = create_app(
            overrides={
                "database_url": fx.database_url,
                "instance_path": fx.instance_path,
                "secret_key": fx.secret_key,
                "log_level": "WARNING",
                # as bench/registration.py: out of reach, yet checked on every request
                "rate_limit_public": "1000000000/minute",
            }
        )
        baseline = create_baseline_app(fx.database_url)
        share = args.known_user_share
        print(
            f"in-process, one thread, SQLite (WAL), {args.requests} requests per app, Python {sys.version.split()[0]}"
        )
        for name, app in (("gateway", gateway), ("baseline", baseline)):
            if args.warmup:
                drive(app, make_bodies(fx, f"{name[0]}w", args.warmup, share))
            seconds = drive(app, make_bodies(fx, name[0], args.requests, share))
            print(f"{name:<9} {seconds / args.requests * 1e6:8.0f} us/request  ({args.requests / seconds:7.0f} req/s)")

        if args.profile:
            bodies = make_bodies(fx, "p", args.requests, share)
            profiler = cProfile.Profile()
            profiler.enable()
            drive(gateway, bodies)
            profiler.disable()
            if args.dump:
                profiler.dump_stats(args.dump)
            for key in args.sort.split(","):
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(key.strip())
                stats.print_stats(args.top)
                print(f"\n=== gateway under cProfile, sorted by {key.strip()} ({args.requests} requests)")
                print(out.getvalue().split("\n", 3)[-1] if out.getvalue().startswith("\n") else out.getvalue())
        print("verified: every request of both apps answered 200")
        return 0
    finally:
        remove_workdir(workdir)


if __name__ == "__main__":
    sys.exit(main())
