"""The benchmark's baseline: a bare Flask route that parses the registration form and inserts one row.

It is what registration would cost with nothing of pushgate's own around it: the same WSGI server,
the same Flask, the same database and engine settings (:func:`store.db.make_engine`), one form
parse (split on ``&`` and ``=``, ``+`` to space, percent-decode to bytes, UTF-8 decode) and one
``INSERT`` + ``COMMIT`` per request through SQLAlchemy Core. ``bench/registration.py`` serves it
with ``gunicorn 'bench.baseline_app:app_from_env()'`` and the same server settings as the gateway.

The database comes from ``PUSHGATE_DATABASE_URL`` (the same variable the gateway reads); the
table is created by the benchmark before the server starts.
"""

from __future__ import annotations

import os
from urllib.parse import unquote_to_bytes

from flask import Flask, Response, request
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, insert

from store.db import make_engine

PATH = "/nms/mobile/1/registerAndroid.jssp"

metadata = MetaData()
bench_registration = Table(
    "bench_registration",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token", String(4096), nullable=False),
    Column("integration_key", String(200), nullable=False),
    Column("user_key", String(255)),
    Column("body", Text, nullable=False),
)


def parse_form(body: bytes) -> dict[str, str] | None:
    """A minimal correct form parser; None when the body is not valid UTF-8."""
    fields: dict[str, str] = {}
    for pair in body.split(b"&"):
        if not pair:
            continue
        name, _, value = pair.partition(b"=")
        try:
            key = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8")
            text = unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return None
        fields.setdefault(key, text)
    return fields


def create_baseline_app(database_url: str) -> Flask:
    engine = make_engine(database_url)
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok", mimetype="text/plain")

    @app.post(PATH)
    def register() -> Response:
        body = request.get_data()
        fields = parse_form(body)
        if fields is None:
            return Response("invalid UTF-8", status=400)
        token = fields.get("registrationToken", "")
        integration_key = fields.get("mobileAppUuid", "")
        if not token or not integration_key:
            return Response("missing field", status=400)
        with engine.begin() as conn:  # one INSERT + COMMIT
            conn.execute(
                insert(bench_registration).values(
                    token=token,
                    integration_key=integration_key,
                    user_key=fields.get("userKey") or None,
                    body=body.decode("utf-8"),
                )
            )
        return Response(status=200)

    return app


def app_from_env() -> Flask:
    """Entry point for ``gunicorn 'bench.baseline_app:app_from_env()'``."""
    url = os.environ.get("PUSHGATE_DATABASE_URL", "")
    if not url:
        raise SystemExit("baseline_app: PUSHGATE_DATABASE_URL must be set")
    return create_baseline_app(url)
