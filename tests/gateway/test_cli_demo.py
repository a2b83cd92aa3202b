"""``flask --app wsgi demo`` prepares what a marketer tries first in the console: the demo devices as
test devices, an audience holding the demo profile, and a real-length FCM token."""

from __future__ import annotations

from typing import Any

from domain import audiences, test_devices
from gateway.cli.devtools import DEMO_ANDROID_TOKEN, DEMO_APP, DEMO_SEGMENT
from store.models import App, AudienceMember
from tests.conftest import runtime_of


def test_demo_gives_the_console_test_devices_and_an_audience_once(app: Any, gateway_with: Any) -> None:
    cli = gateway_with(fcm_endpoint="https://127.0.0.1:8444").test_cli_runner()
    for _ in range(2):
        result = cli.invoke(args=["demo"])
        assert result.exit_code == 0, result.output
    with runtime_of(app).sessions() as session:
        demo = session.query(App).filter_by(name=DEMO_APP).one()
        devices = test_devices.list_for_app(session, demo.id)
        assert sorted(d.label for d in devices) == ["Demo Android", "Demo iPhone"]
        (audience,) = session.scalars(audiences.list_query(DEMO_SEGMENT)).all()
        members = session.query(AudienceMember).filter_by(audience_id=audience.id).all()
        assert audience.name == "Demo audience" and [m.status for m in members] == ["realized"]
    assert len(DEMO_ANDROID_TOKEN) >= 150 and ":APA91b" in DEMO_ANDROID_TOKEN
