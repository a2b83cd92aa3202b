"""gunicorn settings for production behind a reverse proxy: ``gunicorn -c deploy/gunicorn.conf.py wsgi:app``.

Run it in the checkout, where ``wsgi`` is importable (``deploy/systemd/pushgate-web.service`` sets
the working directory). It extends ``../gunicorn.conf.py``, whose hooks start and stop the in-process
worker in each gunicorn worker (they do nothing under ``PUSHGATE_WORKER=off``, when
``flask --app wsgi worker`` services send); this file adds what a production server needs:

- **bind** ``127.0.0.1:8000``: loopback only, the proxy on the same host is the one client. The proxy
  reaches it over TCP, not a unix socket: a unix socket has no peer address, so no
  ``PUSHGATE_TRUSTED_PROXIES`` entry could match it and the forwarded client address would be lost.
- **workers** ``WEB_CONCURRENCY`` (default two per CPU this process may use), each with 4 threads
  (the shape ``bench/registration.py`` measures); the app is built once in the master (preload), so
  a wrong setting stops the server with its one line before any worker starts.
- **forwarded_allow_ips** is ``PUSHGATE_TRUSTED_PROXIES``: gunicorn believes ``X-Forwarded-Proto``
  from the same proxies that pushgate believes ``X-Forwarded-For``, ``-Proto`` and ``-Host`` from
  (see ``gateway/proxies.py``), and from no one when it is empty; it is the only scheme header read.
- **access log** on stdout (journald under systemd), one line a request. Its first field is the
  client address pushgate saw: behind a trusted proxy the forwarded one, otherwise the socket's. It
  leaves out query strings, which carry push tokens and ECIDs (``/id``) and tracking ids (``/r/``),
  and ends with the request's id (``X-Request-ID``, nginx's ``$request_id``), the one on pushgate's
  log lines of that request.
- **graceful shutdown**: on SIGTERM the workers stop accepting, finish the requests in flight within
  ``graceful_timeout`` and stop their in-process worker, if any (a batch it was sending is sent again
  once its lease has passed); the systemd unit waits longer than that before it kills anything.

Any value can still be overridden on the command line or in ``GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from pathlib import Path
from typing import Any


def _base_hooks() -> Any:
    """``../gunicorn.conf.py`` loaded as a module (its file name is no importable module name)."""
    path = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
    spec = importlib.util.spec_from_file_location("pushgate_gunicorn_base", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _proxies(value: str) -> str:
    """``PUSHGATE_TRUSTED_PROXIES`` as gunicorn reads it. An entry that is no address or network is
    left out here: the app then refuses it at start with its one-line message naming the setting."""
    networks = []
    for item in value.split(","):
        try:
            networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
        except ValueError:
            continue
    return ",".join(networks)


def _cpus() -> int:
    """CPUs this process may run on (a systemd CPUAffinity= or a container's cpuset counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_base = _base_hooks()
post_worker_init = _base.post_worker_init
worker_exit = _base.worker_exit

bind = ["127.0.0.1:8000"]
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * _cpus())
worker_class = "gthread"
threads = 4
preload_app = True
proc_name = "pushgate-web"

# A worker silent this long is killed and replaced; requests are short (the longest are CSV exports).
timeout = 30
graceful_timeout = 30

forwarded_allow_ips = _proxies(os.environ.get("PUSHGATE_TRUSTED_PROXIES", ""))
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

accesslog = "-"
access_log_format = (
    '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms %({x-request-id}o)s'
)

# gunicorn's control socket, for gunicornc: in the runtime folder systemd gives the service
# (RuntimeDirectory=), else gunicorn's default under the home folder.
if os.environ.get("RUNTIME_DIRECTORY"):
    control_socket = str(Path(os.environ["RUNTIME_DIRECTORY"].split(":")[0]) / "gunicorn.ctl")
