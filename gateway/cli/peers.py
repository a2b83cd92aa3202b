"""``flask --app wsgi emulators``: the local APNs and FCM peers together, with an inbox page.

The push equivalent of a local mail catcher. Both peers verify credentials for real (the APNs
peer checks ES256 provider tokens, the FCM peer checks the service account's signed OAuth
assertion) against the apps stored in pushgate's own database, so any app created through the
API works against them as soon as its credentials are stored. What they received is listed at
``http://127.0.0.1:<inbox port>/`` and as JSON at ``/inbox`` (``DELETE /inbox`` empties it).

With a ``platform_port``, the local Experience Platform peer (:mod:`sync.peers.platform`) runs too:
its ``PUSHGATE_AEP_*`` settings join :meth:`RunningEmulators.environment`, and the inbox page lists
its datasets with the records they received.
"""

from __future__ import annotations

import html
import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from core.secrets import SecretBox
from domain.credentials import opened_of_kind
from push.peers.apns import ApnsEmulator, EmulatorThread
from push.peers.fcm import FcmEmulator
from push.peers.inbox import Inbox
from push.peers.tls import local_tls

if TYPE_CHECKING:
    from sync.peers.platform import PeerConfig, PlatformPeer

log = logging.getLogger("pushgate.emulators")


class StoredCredentials:
    """Public keys of the credentials stored in pushgate, looked up by the emulators (cached)."""

    def __init__(self, sessions: Callable[[], Any], box: SecretBox) -> None:
        self.sessions = sessions
        self.box = box
        self._lock = threading.Lock()

    def _secrets(self, kind: str) -> list[dict[str, Any]]:
        with self._lock, self.sessions() as session:
            return opened_of_kind(session, self.box, kind)

    def apns_key(self, key_id: str, team_id: str) -> ec.EllipticCurvePublicKey | None:
        for secret in self._secrets("apns_token"):
            if secret["key_id"] == key_id and secret["team_id"] == team_id:
                key = serialization.load_pem_private_key(secret["key_p8"].encode(), None)
                assert isinstance(key, ec.EllipticCurvePrivateKey)
                return key.public_key()
        return None

    def fcm_account(self, client_email: str) -> rsa.RSAPublicKey | None:
        for secret in self._secrets("fcm_service_account"):
            account = json.loads(secret["service_account"])
            if account.get("client_email") == client_email:
                key = serialization.load_pem_private_key(account["private_key"].encode(), None)
                assert isinstance(key, rsa.RSAPrivateKey)
                return key.public_key()
        return None


@dataclass
class RunningEmulators:
    apns: EmulatorThread
    fcm: FcmEmulator
    inbox_server: BaseWSGIServer
    inbox: Inbox
    ca_path: Path
    platform: PlatformPeer | None = None

    @property
    def inbox_url(self) -> str:
        return f"http://127.0.0.1:{self.inbox_server.server_port}"

    def environment(self) -> dict[str, str]:
        """The settings that point a gateway at these peers."""
        return {
            "PUSHGATE_APNS_ENDPOINT": self.apns.url,
            "PUSHGATE_FCM_ENDPOINT": self.fcm.base_url,
            "PUSHGATE_CA_BUNDLE": str(self.ca_path),
            **(self.platform.environment() if self.platform is not None else {}),
        }

    def stop(self) -> None:
        self.inbox_server.shutdown()
        self.inbox_server.server_close()
        self.fcm.stop()
        self.apns.stop()
        if self.platform is not None:
            self.platform.stop()


def start(
    credentials: StoredCredentials,
    tls_dir: Path,
    *,
    apns_port: int = 0,
    fcm_port: int = 0,
    inbox_port: int = 0,
    slow_delay: float = 3.0,
    platform_port: int | None = None,
    platform_config: PeerConfig | None = None,
) -> RunningEmulators:
    _check_free(apns_port, fcm_port, inbox_port, platform_port or 0)
    tls = local_tls(tls_dir)
    inbox = Inbox()
    apns = EmulatorThread(
        ApnsEmulator(tls, inbox=inbox, key_lookup=credentials.apns_key, slow_delay=slow_delay), port=apns_port
    ).start()
    fcm = FcmEmulator(
        credentials.fcm_account, inbox=inbox, port=fcm_port, ssl_context=tls.server_context(), slow_seconds=slow_delay
    ).start()
    platform = None
    if platform_port is not None:
        from sync.peers.platform import PlatformPeer  # jsonschema and the peer only when asked for

        platform = PlatformPeer(platform_config, port=platform_port).start()
    server = make_server("127.0.0.1", inbox_port, _inbox_app(inbox, platform), threaded=True)
    threading.Thread(target=server.serve_forever, name="emulator-inbox", daemon=True).start()
    return RunningEmulators(apns, fcm, server, inbox, tls.ca_path, platform)


def _check_free(*ports: int) -> None:
    """An OSError naming the first fixed port another program holds, before any peer starts (so
    that none is left running, and werkzeug does not print its own lines for the inbox's)."""
    for port in ports:
        if port <= 0:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                raise OSError(exc.errno, f"port {port} on 127.0.0.1 is in use") from None


PAGE = """<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="3">
<title>pushgate emulators</title><style>body{{font:14px system-ui;margin:2em}}
table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}}
pre{{margin:0;white-space:pre-wrap;max-width:60em}}.err{{color:#b00}}</style></head><body>
<h1>Pushes received by the local emulators</h1><p>{count} received; newest first; refreshes every 3 s.
JSON: <a href="/inbox">/inbox</a></p><table><tr><th>time</th><th>platform</th><th>token</th><th>answer</th>
<th>title / body</th><th>payload</th></tr>{rows}</table>{platform}</body></html>"""

PLATFORM = """<h2>Local Experience Platform peer</h2><p>{url} &middot; JSON: <a href="{url}/_peer/state">state</a></p>
<table><tr><th>dataset</th><th>id</th><th>Profile</th><th>records</th><th>distinct _id</th><th>failed</th></tr>
{rows}</table>"""


ROW = "<tr><td>{}</td><td>{}</td><td>{}</td><td class='{}'>{}</td><td>{}</td><td><pre>{}</pre></td></tr>"


def _summary(record: dict[str, Any]) -> str:
    payload = record.get("payload") or {}
    if record.get("platform") == "ios":
        alert = (payload.get("aps") or {}).get("alert") or {}
        return f"{alert.get('title', '')} / {alert.get('body', '')}" if isinstance(alert, dict) else str(alert)
    data = payload.get("data") or {}
    notification = payload.get("notification") or {}
    title = data.get("adb_title") or notification.get("title") or ""
    body = data.get("adb_body") or notification.get("body") or ""
    return f"{title} / {body}"


def _platform_section(peer: PlatformPeer | None) -> str:
    if peer is None:
        return ""
    rows = []
    for dataset in peer.state.summary()["datasets"]:
        profile = "yes" if dataset["profile"] else "no"
        cells = [
            dataset["name"],
            dataset["id"],
            profile,
            dataset["records"],
            dataset["distinct_ids"],
            dataset["failed"],
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in cells) + "</tr>")
    return PLATFORM.format(url=html.escape(peer.url), rows="".join(rows))


def _inbox_app(inbox: Inbox, peer: PlatformPeer | None = None) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        if request.path == "/inbox" and request.method == "DELETE":
            inbox.clear()
            response = Response(status=204)
        elif request.path == "/inbox":
            platform = request.args.get("platform") or None
            records = inbox.items(platform)
            if platform is not None:
                records = [{**r, "platform": platform} for r in records]
            response = Response(json.dumps(records), content_type="application/json")
        elif request.path == "/":
            rows = []
            for record in reversed(inbox.items()[-500:]):
                status = record.get("status")
                cells = (
                    record.get("received_at", ""),
                    record.get("platform", ""),
                    (record.get("token") or "")[:24],
                    "" if status == 200 else "err",
                    f"{status} {record.get('reason') or ''}".strip(),
                    _summary(record),
                    json.dumps(record.get("payload"), ensure_ascii=False, indent=1)[:2000],
                )
                rows.append(ROW.format(*(html.escape(str(v)) for v in cells)))
            page = PAGE.format(count=inbox.count(), rows="".join(rows), platform=_platform_section(peer))
            response = Response(page, content_type="text/html")
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)

    return app
