"""The FCM emulator's own ceiling: how many ``messages:send`` requests/s it answers from a C HTTP/2 client.

Once pushgate's FCM path costs less CPU than the emulator answering it, the emulator (pure Python, on
the same cores) is the limit of every Android figure of bench/send.py; this tells how close to that
limit the gateway is. ``h2load`` (Debian's ``nghttp2-client``) sends ``requests`` copies of one
message body like the worker's, with an access token the emulator issued, over ``connections``
connections of 100 streams each (the worker's pool: up to 4 connections of 100 streams). Without
h2load the ceiling is skipped and says how to get it. The emulator's inbox is emptied afterwards.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from firebase_admin import credentials

from bench.send_fixture import FCM_PROJECT, Emulators, android_token
from push.providers.fcm_auth import AccessTokens
from push.providers.fcm_message import request_body

#: What the worker sends for the benchmark's message (push.payloads.fcm for a Classic Android app).
PAYLOAD = {
    "data": {
        "_mId": "123456",
        "_dId": "1e240.f3Kq9ZxT1vB2nL8w",
        "adb_title": "Flash sale",
        "adb_body": "Hi Ada, 20% off everything until midnight",
        "offer": "SPRING24",
    },
    "android": {"priority": "HIGH"},
}
_FINISHED = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
_ANSWERED_2XX = re.compile(r"status codes: (\d+) 2xx")


@dataclass(frozen=True)
class Ceiling:
    connections: int
    requests: int
    rate: float  # requests/s, every one answered 2xx


def access_token(emulators: Emulators) -> str:
    info = json.loads(emulators.service_account_path.read_text())
    tokens = AccessTokens(credentials.Certificate(info).get_credential(), emulators.ca_path, 10.0)
    try:
        return asyncio.run(tokens.token())
    finally:
        tokens.close()


def measure(emulators: Emulators, requests: int, connections: int) -> Ceiling | str:
    """The ceiling, or why there is none."""
    h2load = shutil.which("h2load")
    if h2load is None:
        return "no h2load here (apt-get install nghttp2-client)"
    token = access_token(emulators)
    with tempfile.TemporaryDirectory(prefix="pushgate-ceiling-") as folder:
        body = Path(folder) / "body.json"
        body.write_bytes(request_body(PAYLOAD, android_token(0)))
        argv = [
            h2load,
            f"-n{requests}",
            f"-c{connections}",
            "-m100",
            f"-d{body}",
            "-Hcontent-type: application/json",
            f"-Hauthorization: Bearer {token}",
            f"{emulators.fcm_url}/v1/projects/{FCM_PROJECT}/messages:send",
        ]
        output = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False).stdout
    emulators.clear()
    finished, answered = _FINISHED.search(output), _ANSWERED_2XX.search(output)
    if finished is None or answered is None or int(answered.group(1)) != requests:
        return f"h2load did not get {requests} answers: {output[-400:]!r}"
    return Ceiling(connections, requests, float(finished.group(1)))
