"""The fixture of ``bench/send.py`` and ``bench/send_profile.py``: the emulator processes, a fresh
SQLite instance with one app, N profiles and N subscriptions, and the child processes that run
them (ended whatever happens). The tokens the instance holds are what the inbox check expects."""

from __future__ import annotations

import json
import os
import ssl
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, Child

BUNDLE_ID = "com.example.bench"
PACKAGE = "com.example.bench.android"
KEY_ID, TEAM_ID = "BENCHKEY01", "BENCHTEAM1"
FCM_PROJECT = "pushgate-bench"
FIRST_NAMES = ("Alice", "Bruno", "Chloe", "Dmitri", "Emma", "Farid", "Grace", "Hugo")
PROVIDER = {"ios": "apns", "android": "fcm"}


# --------------------------------------------------------------------------------------------
# child processes
# --------------------------------------------------------------------------------------------


class Children:
    """Every child started by this run, so that ``stop_all`` ends them whatever happened."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.all: list[Child] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        child = Child(name, argv, env, self.workdir / f"{name}.log")
        self.all.append(child)
        return child.start()

    def stop_all(self) -> None:
        for child in reversed(self.all):
            child.stop()


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM / VmRSS of a process in KiB (from /proc/<pid>/status)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            values[name] = int(rest.split()[0])
    return values


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return env


# --------------------------------------------------------------------------------------------
# emulators
# --------------------------------------------------------------------------------------------


@dataclass
class Emulators:
    apns: Child
    fcm: Child
    apns_url: str
    fcm_url: str
    tls_dir: Path
    key_path: Path
    service_account_path: Path

    @property
    def ca_path(self) -> Path:
        return self.tls_dir / "ca.pem"

    def _client(self, url: str) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca_path))
        return httpx.Client(base_url=url, verify=context, http2=url == self.apns_url, timeout=120.0)

    def inbox(self, platform_name: str) -> list[dict[str, Any]]:
        """Every record of one emulator's inbox (APNs answers a list, FCM ``{"count", "items"}``)."""
        url = self.apns_url if platform_name == "ios" else self.fcm_url
        with self._client(url) as client:
            response = client.get("/_emulator/inbox")
            response.raise_for_status()
            body = response.json()
        return body if isinstance(body, list) else body["items"]

    def clear(self) -> None:
        for url in (self.apns_url, self.fcm_url):
            with self._client(url) as client:
                client.delete("/_emulator/inbox").raise_for_status()

    def cpu(self, platform_name: str) -> float:
        return proc_cpu((self.apns if platform_name == "ios" else self.fcm).pid)


def start_emulators(children: Children, workdir: Path, inbox_limit: int) -> Emulators:
    from tests.factories import apns_key_p8

    tls_dir = workdir / "tls"
    key_path = workdir / "apns-key.p8"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(apns_key_p8())
    account_path = workdir / "fcm-service-account.json"
    env = base_env()
    python = sys.executable
    # FCM first: it creates the TLS folder, which the APNs emulator then reuses.
    fcm = children.start(
        "fcm-emulator",
        [
            python,
            "-m",
            "push.peers.fcm",
            "--port",
            "0",
            "--tls-dir",
            str(tls_dir),
            "--new-service-account",
            str(account_path),
            "--project",
            FCM_PROJECT,
            "--inbox-limit",
            str(inbox_limit),
        ],
        env,
    )
    fcm_url = fcm.wait_for(r"FCM emulator listening on (https://\S+)").group(1)
    apns = children.start(
        "apns-emulator",
        [
            python,
            "-m",
            "push.peers.apns",
            "--port",
            "0",
            "--tls-dir",
            str(tls_dir),
            "--key",
            f"{KEY_ID}:{TEAM_ID}:{key_path}",
            "--topic",
            BUNDLE_ID,
            "--inbox-limit",
            str(inbox_limit),
        ],
        env,
    )
    apns_url = apns.wait_for(r"APNs emulator listening on (https://\S+)").group(1)
    return Emulators(apns, fcm, apns_url, fcm_url, tls_dir, key_path, account_path)


def instance_env(instance: Instance, emulators: Emulators) -> dict[str, str]:
    """The environment of a gateway process (worker, Celery worker) serving ``instance`` and
    sending to the emulators, logging warnings only."""
    env = base_env()
    env.update(
        PUSHGATE_DATABASE_URL=instance.database_url,
        PUSHGATE_INSTANCE_PATH=str(instance.folder),
        PUSHGATE_SECRET_KEY=instance.secret_key,
        PUSHGATE_APNS_ENDPOINT=emulators.apns_url,
        PUSHGATE_FCM_ENDPOINT=emulators.fcm_url,
        PUSHGATE_CA_BUNDLE=str(emulators.ca_path),
        PUSHGATE_LOG_LEVEL="WARNING",
    )
    return env


@dataclass
class InboxCheck:
    records: int
    accepted: int
    distinct: int
    missing: int  # expected tokens never accepted (when the expected tokens are known)
    avg_bytes: float

    @property
    def exact(self) -> bool:
        return self.records == self.accepted == self.distinct and self.missing == 0


def check_inbox(
    emulators: Emulators, platform_name: str, expected: int, tokens: set[str] | None, clear: bool = True
) -> InboxCheck:
    records = emulators.inbox(platform_name)
    accepted = [r for r in records if r.get("status") == 200]
    received = Counter(r.get("token") for r in accepted)
    sizes = [len(json.dumps(r.get("payload"), separators=(",", ":")).encode()) for r in accepted[:2000]]
    missing = len(tokens - set(received)) if tokens is not None else max(0, expected - len(received))
    if clear:
        emulators.clear()
    return InboxCheck(len(records), len(accepted), len(received), missing, sum(sizes) / max(1, len(sizes)))


# --------------------------------------------------------------------------------------------
# database
# --------------------------------------------------------------------------------------------


@dataclass
class Instance:
    subscriptions: int
    folder: Path
    database_url: str
    secret_key: str
    app_id: int = 0
    tokens: dict[str, set[str]] = field(default_factory=dict)


def ios_token(i: int) -> str:
    return f"0a{i:062x}"  # 64 hex digits; no error-injection prefix


def android_token(i: int) -> str:
    return f"bench-{i:08d}:APA91b" + "k" * 140  # FCM-like length; no error-injection prefix


def prepare_instance(
    workdir: Path, n: int, emulators: Emulators, url: str = "", platforms: tuple[str, ...] = ("ios", "android")
) -> Instance:
    """A fresh migrated database (SQLite in the instance folder, or the empty database of ``url``)
    with one app (both platforms), n profiles and n subscriptions, the platforms of ``platforms``
    taken in turn."""
    from cryptography.fernet import Fernet
    from sqlalchemy import insert, select

    from core.secrets import SecretBox
    from store import db as store_db
    from store.models import App, AppPlatform, Profile, Subscription
    from store.types import utcnow

    folder = workdir / f"instance-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    url = url or f"sqlite:///{folder / 'pushgate.db'}"
    instance = Instance(n, folder, url, Fernet.generate_key().decode())
    store_db.upgrade(url)
    box = SecretBox(instance.secret_key.encode())
    engine = store_db.make_engine(url)
    sessions = store_db.make_session_factory(engine)
    service_account = emulators.service_account_path.read_text()
    try:
        with sessions.begin() as session:
            app = App(name="Bench")
            app.platforms = [
                AppPlatform(
                    platform="ios",
                    integration_key="bench-ios",
                    app_identifier=BUNDLE_ID,
                    credential_kind="apns_token",
                    apns_environment="sandbox",
                    credentials=box.seal(
                        {"key_p8": emulators.key_path.read_text(), "key_id": KEY_ID, "team_id": TEAM_ID}
                    ),
                ),
                AppPlatform(
                    platform="android",
                    integration_key="bench-android",
                    app_identifier=PACKAGE,
                    credential_kind="fcm_service_account",
                    credentials=box.seal({"service_account": service_account}),
                ),
            ]
            session.add(app)
            session.flush()
            instance.app_id = app.id
        now = utcnow()
        chunk = 10_000
        with sessions.begin() as session:
            for start in range(0, n, chunk):
                session.execute(
                    insert(Profile),
                    [
                        {
                            "external_id": f"bench-{i}",
                            "email": f"bench-{i}@example.com",
                            "first_name": FIRST_NAMES[i % len(FIRST_NAMES)],
                            "attributes": {},
                            "push_consent": "u",
                            "created_at": now,
                            "updated_at": now,
                        }
                        for i in range(start, min(n, start + chunk))
                    ],
                )
            profile_ids = list(session.scalars(select(Profile.id).order_by(Profile.id)))
            instance.tokens = {"ios": set(), "android": set()}
            for start in range(0, n, chunk):
                rows = []
                for i in range(start, min(n, start + chunk)):
                    platform_name = platforms[i % len(platforms)]
                    token = ios_token(i) if platform_name == "ios" else android_token(i)
                    instance.tokens[platform_name].add(token)
                    rows.append(
                        {
                            "app_id": instance.app_id,
                            "platform": platform_name,
                            "token": token,
                            "sdk": "campaign-classic",
                            "push_provider": PROVIDER[platform_name],
                            "profile_id": profile_ids[i],
                            "additional_params": {},
                            "disabled": False,
                            "created_at": now,
                            "last_registered_at": now,
                        }
                    )
                session.execute(insert(Subscription), rows)
    finally:
        engine.dispose()
    return instance
