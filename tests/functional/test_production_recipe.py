"""The production recipe in ``deploy/``, tested by serving it: a real nginx with the shipped site file
terminates TLS (a test CA's certificate) on loopback in front of gunicorn with the shipped config, and
a ``flask --app wsgi worker`` process sends to the local emulators. An app's SDK requests (Campaign
Classic registration, ``/r/`` tracking) and a backend's API requests go through it over HTTPS, and
gunicorn's access log shows the client address pushgate saw: the phone's when
``PUSHGATE_TRUSTED_PROXIES`` names nginx, nginx's own when it is empty, never one a client wrote in
``X-Forwarded-For``. The systemd units pass ``systemd-analyze verify`` and its security review.
See :mod:`tests.functional.recipe` for how each piece is started."""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from core.config import ENV_PREFIX, Settings, load_settings, unknown_variables
from gateway.cli import peers as runner
from tests.factories import make_app
from tests.functional import sdk_wire
from tests.functional.recipe import (
    CLIENT_ADDRESS,
    DEPLOY,
    PUBLIC_HOST,
    ROOT,
    SITE,
    Tls,
    access_lines,
    new_ports,
    nginx_binary,
    public_client,
    running_nginx,
    running_web,
    running_worker,
    wait_served,
)
from tests.functional.test_entry_points import gateway_env
from tests.waiting import wait_until

SPOOFED = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "http",
    "X-Forwarded-Host": "evil.example",
    "X-Request-ID": "chosen-by-the-client",
}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return Tls.make(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def nginx() -> str:
    return nginx_binary()  # skips (or fails in CI) before anything is started


def session_cookie(response: httpx.Response) -> str:
    (cookie,) = [value for value in response.headers.get_list("set-cookie") if value.startswith("pushgate_console=")]
    return cookie


def sdk_config(http: httpx.Client, keys: Any, app_id: int, platform: str) -> dict[str, Any]:
    answer = http.get(
        f"/api/v1/apps/{app_id}/sdk-config",
        params={"platform": platform, "sdk": "campaign-classic"},
        headers=keys.marketer,
    )
    assert answer.status_code == 200, answer.text
    config: dict[str, Any] = answer.json()["configuration"]
    return config


@pytest.mark.slow
def test_sdk_and_api_through_nginx_reach_pushgate_with_the_phone_address(
    app: Flask,
    keys: Any,
    emulators: runner.RunningEmulators,
    pointed: dict[str, Any],
    tls: Tls,
    nginx: str,
    tmp_path: Path,
) -> None:
    ids = make_app(app, token_uri=emulators.fcm.token_url)
    ports = new_ports()
    env = gateway_env(pointed, tmp_path / "gw", PUSHGATE_TRUSTED_PROXIES="127.0.0.1")
    web_log = tmp_path / "web.log"
    try:
        with (
            running_worker(env, tmp_path / "worker.log") as worker,
            running_web(env, tmp_path, ports.gunicorn, web_log) as web,
            running_nginx(tmp_path / "nginx", ports, tls),
            public_client(ports, tls) as http,
        ):
            wait_served(http)
            configs = {platform: sdk_config(http, keys, ids["id"], platform) for platform in ("android", "ios")}
            for platform, config in configs.items():  # the app on each phone registers its token
                assert config["campaignclassic.marketingServer"] == PUBLIC_HOST
                answer = http.send(sdk_wire.classic_registration(config, platform))
                assert answer.status_code == 200, answer.text
            subscriptions = http.get(f"/api/v1/apps/{ids['id']}/subscriptions", headers=keys.viewer).json()["items"]
            assert sorted(s["token"] for s in subscriptions) == sorted(sdk_wire.TOKENS.values())

            body = {
                "app_id": ids["id"],
                "name": "recipe",
                "target": {"all": True},
                "message": {"title": "t", "body": "b"},
            }
            created = http.post("/api/v1/deliveries", json=body, headers=keys.marketer)
            assert created.status_code == 201, created.text
            delivery = f"/api/v1/deliveries/{created.json()['id']}"
            wait_until(  # sent by the worker process: the web one runs none (PUSHGATE_WORKER=off)
                lambda: http.get(delivery, headers=keys.viewer).json()["status"] == "completed",
                60,
                interval=0.2,
                message="the worker service did not send the delivery",
            )
            for record in emulators.inbox.items():  # each phone reports the push received, then opened
                platform = record["platform"]
                carried = record["payload"]["data"] if platform == "android" else record["payload"]
                for tag in ("1", "2"):
                    request = sdk_wire.classic_tracking(
                        configs[platform], platform, carried["_mId"], carried["_dId"], tag
                    )
                    assert http.send(request).status_code == 200
            counts = http.get(delivery, headers=keys.viewer).json()["counts"]
            assert (counts["sent"], counts["received"], counts["opened"]) == (2, 2, 2), counts

            # A client's own X-Forwarded-* are dropped by nginx: not believed, whatever they say.
            spoofed = http.get("/console/sign-in", headers=SPOOFED)
            assert spoofed.status_code == 200
            assert re.fullmatch("[0-9a-f]{32}", spoofed.headers["x-request-id"])  # nginx's $request_id
            assert "; Secure" in session_cookie(spoofed)  # pushgate saw HTTPS, as nginx said
            assert spoofed.headers["strict-transport-security"] == "max-age=63072000"
    finally:
        print(web_log.read_text()[-5000:] if web_log.exists() else "no web log")  # shown when the test fails
    assert web.returncode == 0 and worker.returncode == 0, "a service did not stop cleanly on SIGTERM"
    lines = access_lines(web_log)  # complete: gunicorn has stopped
    paths = {line["path"] for line in lines}
    assert {
        "/nms/mobile/1/registerAndroid.jssp",
        "/nms/mobile/1/registerIOS.jssp",
        "/r/",
        "/api/v1/deliveries",
    } <= paths
    assert {line["client"] for line in lines} == {CLIENT_ADDRESS}, lines
    # The access line of a request names its id, which pushgate answered with and logs under.
    assert {"method": "POST", "path": "/api/v1/deliveries", "request_id": created.headers["x-request-id"]}.items() <= (
        next(line for line in lines if line["method"] == "POST" and line["path"] == "/api/v1/deliveries").items()
    )
    assert "203.0.113.9" not in web_log.read_text()


@pytest.mark.slow
def test_without_trusted_proxies_pushgate_sees_nginx_and_believes_nothing_it_forwards(
    app: Flask, settings_overrides: dict[str, Any], tls: Tls, nginx: str, tmp_path: Path
) -> None:
    ports = new_ports()
    env = gateway_env(settings_overrides, tmp_path / "gw", PUSHGATE_TRUSTED_PROXIES="")
    web_log = tmp_path / "web.log"
    with (
        running_web(env, tmp_path, ports.gunicorn, web_log) as web,
        running_nginx(tmp_path / "nginx", ports, tls),
        public_client(ports, tls) as http,
    ):
        wait_served(http)
        page = http.get("/console/sign-in", headers=SPOOFED)
        assert page.status_code == 200
        assert "; Secure" not in session_cookie(page)  # X-Forwarded-Proto: https not believed either
    assert web.returncode == 0
    lines = access_lines(web_log)
    assert lines and {line["client"] for line in lines} == {"127.0.0.1"}, lines  # nginx's address


@pytest.mark.slow
def test_nginx_redirects_http_speaks_tls_1_2_and_1_3_and_limits_bodies_as_pushgate_does(
    app: Flask, settings_overrides: dict[str, Any], keys: Any, tls: Tls, nginx: str, tmp_path: Path
) -> None:
    ports = new_ports()
    env = gateway_env(settings_overrides, tmp_path / "gw", PUSHGATE_TRUSTED_PROXIES="127.0.0.1")
    with (
        running_web(env, tmp_path, ports.gunicorn, tmp_path / "web.log"),
        running_nginx(tmp_path / "nginx", ports, tls),
        public_client(ports, tls) as http,
    ):
        wait_served(http)
        plain = http.get(f"http://{PUBLIC_HOST}/nms/mobile/1/registerAndroid.jssp?a=1")
        assert plain.status_code == 301
        assert plain.headers["location"] == f"https://{PUBLIC_HOST}/nms/mobile/1/registerAndroid.jssp?a=1"
        assert http.get(f"http://{PUBLIC_HOST}/healthz", follow_redirects=True).json() == {"status": "ok"}

        answer = http.get("/healthz")
        assert answer.extensions["network_stream"].get_extra_info("ssl_object").version() == "TLSv1.3"
        with public_client(ports, tls, maximum=ssl.TLSVersion.TLSv1_2) as older_phone:
            answer = older_phone.get("/healthz")
            assert answer.status_code == 200
            assert answer.extensions["network_stream"].get_extra_info("ssl_object").version() == "TLSv1.2"

        limit = Settings.model_fields["max_api_body_bytes"].default
        headers = {**keys.marketer, "Content-Type": "application/json"}
        at_limit = http.post("/api/v1/deliveries", content=b"x" * limit, headers=headers)
        assert at_limit.status_code == 400 and at_limit.json()["error"]  # pushgate's own answer: not JSON
        over = http.post("/api/v1/deliveries", content=b"x" * (limit + 1), headers=headers)
        assert over.status_code == 413 and "nginx" in over.text
        assert over.headers["strict-transport-security"] == "max-age=63072000"  # on errors too


@pytest.mark.slow
def test_a_wrong_setting_stops_the_web_service_with_one_line(tmp_path: Path) -> None:
    """The app is built in gunicorn's master (preload): one line, no worker booted, no traceback,
    and a failed exit, which systemd's Restart=on-failure retries a few times and then reports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHGATE_", "GUNICORN_"))}
    env.update(PUSHGATE_INSTANCE_PATH=str(tmp_path / "gw"), PUSHGATE_TRUSTED_PROXIES="10.0.0.0/8,nginx")
    argv = [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py"), "wsgi:app", "-b", "127.0.0.1:0"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert (done.stdout + done.stderr).strip().splitlines() == [
        "pushgate: invalid setting PUSHGATE_TRUSTED_PROXIES: 'nginx' is not an IP address or network such as 10.0.0.0/8"
    ]


def test_the_site_file_limits_bodies_to_the_api_default() -> None:
    (size,) = re.findall(r"^\s*client_max_body_size (\d+)([km]?);", SITE.read_text(), re.MULTILINE)
    number, unit = int(size[0]), size[1]
    assert number * {"": 1, "k": 1024, "m": 1024 * 1024}[unit] == Settings.model_fields["max_api_body_bytes"].default


def test_the_environment_file_sets_real_settings_to_valid_values() -> None:
    lines = (DEPLOY / "pushgate.env.example").read_text().splitlines()
    assigned = dict(line.lstrip("#").split("=", 1) for line in lines if re.match(r"#?[A-Z_]+=", line))
    assert {"PUSHGATE_SECRET_KEY", "PUSHGATE_DATABASE_URL", "PUSHGATE_PUBLIC_URL", "PUSHGATE_TRUSTED_PROXIES"} <= set(
        assigned
    )
    assert unknown_variables(assigned) == []
    load_settings(
        {
            name.removeprefix(ENV_PREFIX).lower(): value
            for name, value in assigned.items()
            if name.startswith(ENV_PREFIX)
        }
    )


@pytest.fixture
def units(tmp_path: Path) -> Iterator[list[Path]]:
    """The shipped units with the checkout's path for /opt/pushgate, so their commands exist here."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package)")
    copies = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/opt/pushgate", str(ROOT)))
        copies.append(copy)
    assert [c.name for c in copies] == ["pushgate-web.service", "pushgate-worker@.service"]
    yield copies


def test_systemd_units_verify_and_stay_hardened(units: list[Path]) -> None:
    verify = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    # Exposure 0 (locked down) to 10 (unprotected), times ten: at most 2.0, "OK" in systemd's words.
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--threshold=20", *map(str, units)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert security.returncode == 0, security.stdout[-3000:] + security.stderr
