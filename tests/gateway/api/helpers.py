"""Builders for API v1 tests: request bodies with real credentials, a page walker, and a wait for a
sync run started over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from flask.testing import FlaskClient

from tests.factories import apns_key_p8, service_account
from tests.waiting import wait_until


def pem_key(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def apns_certificate(days: int = 365, subject: str = "Apple Push Services: com.example.shop") -> tuple[str, str]:
    """A self-signed certificate valid for ``days`` (negative: already expired) and its key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.now(UTC)
    start = now - timedelta(days=400) if days < 0 else now - timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), pem_key(key)


def token_apns(**overrides: Any) -> dict[str, Any]:
    return {
        "key_p8": apns_key_p8(),
        "key_id": "ABC123DEFG",
        "team_id": "TEAM123456",
        "environment": "sandbox",
        **overrides,
    }


def app_body(name: str = "Shop", **overrides: Any) -> dict[str, Any]:
    """A valid creation body with both platforms and real credentials."""
    body: dict[str, Any] = {
        "name": name,
        "ios": {"bundle_id": "com.example.shop", "apns": token_apns()},
        "android": {"package_name": "com.example.shop", "fcm": {"service_account": service_account()}},
    }
    body.update(overrides)
    return body


def secrets_of(body: dict[str, Any]) -> list[str]:
    """Distinctive fragments of every secret in a creation body, to search responses and logs for."""
    found: list[str] = []

    def inner(pem: str) -> str:
        # A line from the middle of the base64 body: present wherever the key is, whatever framing.
        lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
        return lines[len(lines) // 2]

    for part in (body.get("ios") or {}).get("apns") or {}, (body.get("android") or {}).get("fcm") or {}:
        if not isinstance(part, dict):
            continue
        for field in ("key_p8", "certificate_pem", "private_key_pem"):
            if isinstance(part.get(field), str):
                found.append(inner(part[field]))
        account = part.get("service_account")
        if isinstance(account, dict) and isinstance(account.get("private_key"), str):
            found.append(inner(account["private_key"]))
    return found


def walk(client: FlaskClient, url: str, headers: dict[str, str], limit: int) -> list[list[dict[str, Any]]]:
    """Every page of a list endpoint, following next_cursor."""
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    separator = "&" if "?" in url else "?"
    while True:
        query = f"{separator}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url + query, headers=headers)
        assert response.status_code == 200, response.json
        pages.append(response.json["items"])
        cursor = response.json["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "pagination does not end"


def finished_run(client: FlaskClient, headers: dict[str, str], run_id: int, timeout: float) -> dict[str, Any]:
    """The body of ``GET /api/v1/sync/runs/<run_id>`` once the run is no longer running."""

    def finished() -> dict[str, Any] | None:
        body = client.get(f"/api/v1/sync/runs/{run_id}", headers=headers).json
        return None if body["status"] == "running" else dict(body)

    return wait_until(finished, timeout, interval=0.02, message=f"the sync run {run_id} did not finish")
