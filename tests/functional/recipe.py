"""The production recipe of ``deploy/`` served for real on loopback, for ``test_production_recipe``.

- nginx (Debian's package) serves the shipped site file, ``deploy/nginx/pushgate.conf``, with only
  what a test machine must change replaced (ports, certificate paths, host name: :func:`site_for_test`),
  under a minimal main configuration of its own;
- gunicorn runs with ``deploy/gunicorn.conf.py`` and the environment ``pushgate-web.service``
  gives it (``PUSHGATE_WORKER=off``, a runtime folder), on a loopback port instead of 8000;
- ``flask --app wsgi worker`` runs as ``pushgate-worker@.service`` runs it.

The hops are told apart by their loopback addresses: clients connect to nginx from
:data:`CLIENT_ADDRESS`, nginx to gunicorn from 127.0.0.1. gunicorn's access log names the client
address pushgate saw (:func:`access_lines`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
import trustme

from tests.functional.test_entry_points import stop
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SITE = DEPLOY / "nginx" / "pushgate.conf"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"
PUBLIC_HOST = "push.example.test"  # the root conftest's public_url
CLIENT_ADDRESS = "127.0.0.2"  # the phones' and backends' side of nginx; nginx reaches gunicorn from 127.0.0.1
ACCESS = re.compile(  # deploy/gunicorn.conf.py's access_log_format
    r'^(?P<client>\S+) \S+ \S+ \[[^\]]+\] "(?P<method>\S+) (?P<path>\S+) \S+" (?P<status>\d{3}) '
    r".* \d+ms (?P<request_id>\S+)$"
)


def nginx_binary() -> str:
    """Debian's nginx (in /usr/sbin, off the PATH of most users); skips, or fails in CI, without it."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed (apt-get install nginx); .ci/run installs it")
        pytest.skip("the production recipe's test needs Debian's nginx package (apt-get install nginx)")
    return found


class Ports(NamedTuple):
    http: int
    https: int
    gunicorn: int


@dataclass(frozen=True)
class Tls:
    """A test CA and the certificate of :data:`PUBLIC_HOST` it issued, as files for nginx."""

    ca: trustme.CA
    cert: Path
    key: Path

    @classmethod
    def make(cls, folder: Path) -> Tls:
        ca = trustme.CA()
        issued = ca.issue_cert(PUBLIC_HOST)
        cert, key = folder / "fullchain.pem", folder / "privkey.pem"
        cert.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
        issued.private_key_pem.write_to_path(str(key))
        return cls(ca, cert, key)

    def client_context(self, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if maximum is not None:
            context.maximum_version = maximum
        return context


def site_for_test(ports: Ports, tls: Tls) -> str:
    """The shipped site file with what differs on a test machine replaced, and nothing else: a
    directive this looks for and does not find fails the test rather than test something else."""
    text = SITE.read_text()
    replacements = [
        ("    listen [::]:80;\n", ""),  # IPv6 may be off on a test machine
        ("    listen [::]:443 ssl http2;\n", ""),
        ("listen 80;", f"listen 127.0.0.1:{ports.http};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{ports.https} ssl http2;"),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{ports.gunicorn};"),
        ("ssl_certificate /etc/letsencrypt/live/push.example.com/fullchain.pem;", f"ssl_certificate {tls.cert};"),
        ("ssl_certificate_key /etc/letsencrypt/live/push.example.com/privkey.pem;", f"ssl_certificate_key {tls.key};"),
        ("server_name push.example.com;", f"server_name {PUBLIC_HOST};"),
    ]
    for old, new in replacements:
        assert old in text, f"{SITE} no longer has {old.strip()!r}: change site_for_test with it"
        text = text.replace(old, new)
    return text


def nginx_main_config(folder: Path, site: Path) -> str:
    """What /etc/nginx/nginx.conf would be, reduced to files in ``folder``; the site is included."""
    user = "user root;" if os.geteuid() == 0 else ""  # as root, workers would otherwise be nobody
    paths = "\n".join(
        f"    {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}\nworker_processes 1;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} info;\n"
        f"daemon off;\nevents {{ worker_connections 64; }}\n"
        f"http {{\n    access_log {folder / 'access.log'};\n{paths}\n    include {site};\n}}\n"
    )


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def exited(process: subprocess.Popen[Any], what: str, log: Path) -> None:
    if process.poll() is not None:
        raise AssertionError(f"{what} exited with {process.returncode}:\n{log.read_text()[-5000:]}")


@contextmanager
def running_nginx(folder: Path, ports: Ports, tls: Tls) -> Iterator[subprocess.Popen[bytes]]:
    """nginx serving the shipped site on ``ports``, until the block ends (then stopped gracefully)."""
    folder.mkdir()
    site, main = folder / "pushgate.conf", folder / "nginx.conf"
    site.write_text(site_for_test(ports, tls))
    main.write_text(nginx_main_config(folder, site))
    binary = nginx_binary()
    log = folder / "error.log"
    check = subprocess.run(
        [binary, "-t", "-p", str(folder), "-e", str(log), "-c", str(main)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr
    with (folder / "nginx.out").open("wb") as out:
        nginx = subprocess.Popen(
            [binary, "-p", str(folder), "-e", str(log), "-c", str(main)], stdout=out, stderr=subprocess.STDOUT
        )
    try:

        def up() -> bool:
            exited(nginx, "nginx", log)
            return listening(ports.https) and listening(ports.http)

        wait_until(up, 30, interval=0.1, message="nginx did not listen")
        yield nginx
    finally:
        if nginx.poll() is None:
            nginx.send_signal(signal.SIGQUIT)  # graceful
            try:
                nginx.wait(15)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait(10)


@contextmanager
def running_web(env: dict[str, str], folder: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """gunicorn with the shipped config and pushgate-web.service's environment, on ``port``."""
    runtime = folder / "run"
    runtime.mkdir(parents=True, mode=0o700)
    web_env = {**env, "PUSHGATE_WORKER": "off", "RUNTIME_DIRECTORY": str(runtime), "WEB_CONCURRENCY": "2"}
    argv = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "wsgi:app", "-b", f"127.0.0.1:{port}"]
    with log.open("wb") as out:
        master = subprocess.Popen(argv, cwd=ROOT, env=web_env, stdout=out, stderr=subprocess.STDOUT)
    try:

        def up() -> bool:
            exited(master, "gunicorn", log)
            return listening(port)  # a bare connect: no request, so no access-log line of its own

        wait_until(up, 60, interval=0.1, message="gunicorn did not listen")
        yield master
    finally:
        stop(master)


@contextmanager
def running_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``flask --app wsgi worker`` as pushgate-worker@.service runs it."""
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: exited(worker, "the worker", log) or "worker running" in log.read_text(),
            60,
            interval=0.1,
            message=lambda: f"the worker did not start:\n{log.read_text()}",
        )
        yield worker
    finally:
        stop(worker)


class ThroughNginx(httpx.BaseTransport):
    """How a phone or a backend reaches pushgate: ``https://push.example.test`` (and ``http://``)
    resolved to nginx on loopback, connecting from :data:`CLIENT_ADDRESS`. The request keeps its
    Host header and the TLS handshake its server name, so the certificate is checked for the host."""

    def __init__(self, ports: Ports, context: ssl.SSLContext) -> None:
        self.ports = ports
        self.inner = httpx.HTTPTransport(verify=context, local_address=CLIENT_ADDRESS)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != PUBLIC_HOST or request.url.port not in (None, 80, 443):
            raise AssertionError(f"{request.url} is not pushgate's public host")
        port = self.ports.https if request.url.scheme == "https" else self.ports.http
        target = request.url.copy_with(host="127.0.0.1", port=port)
        extensions = {**request.extensions, "sni_hostname": PUBLIC_HOST}
        forwarded = httpx.Request(
            request.method, target, headers=request.headers, content=request.read(), extensions=extensions
        )
        return self.inner.handle_request(forwarded)

    def close(self) -> None:
        self.inner.close()


def public_client(ports: Ports, tls: Tls, maximum: ssl.TLSVersion | None = None) -> httpx.Client:
    transport = ThroughNginx(ports, tls.client_context(maximum))
    return httpx.Client(transport=transport, base_url=f"https://{PUBLIC_HOST}", timeout=15)


def wait_served(http: httpx.Client) -> None:
    """Until nginx gets an answer from gunicorn (502 while its workers boot)."""
    wait_until(lambda: http.get("/healthz").status_code == 200, 60, interval=0.2, message="no answer through nginx")


def access_lines(log: Path) -> list[dict[str, str]]:
    """gunicorn's access-log lines in ``log`` (the server's other lines left out)."""
    return [match.groupdict() for line in log.read_text().splitlines() if (match := ACCESS.match(line))]


def new_ports() -> Ports:
    """Three free loopback ports, all different (held together while the kernel picks them)."""
    sockets = [socket.socket() for _ in Ports._fields]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return Ports(*(int(sock.getsockname()[1]) for sock in sockets))
    finally:
        for sock in sockets:
            sock.close()
