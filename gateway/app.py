"""The app factory: settings, logs, store, blueprints, error rendering (with the request id), request
metrics, trusted proxies, request ids, rate limits, CLI."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from sqlalchemy.exc import OperationalError, ProgrammingError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter, Map

from core.config import Settings, load_settings, unknown_variables
from core.errors import ClientError
from core.logs import configure as configure_logs
from core.metrics import HTTP_LATENCY, HTTP_REQUESTS
from core.secrets import SecretBox, resolve_secret_key
from gateway.limits import install as install_limits
from gateway.logs import RequestIds, current_request_id
from gateway.proxies import TrustedProxies
from gateway.runtime import Runtime, TTLCache, close_session
from store.db import make_engine, make_session_factory

log = logging.getLogger("pushgate")


class StoreId(IntegerConverter):
    """``<int:...>`` in a path matches only ids the store can hold (up to 2^63 - 1): a larger
    number is a 404 like any unknown id, not an overflow in the database driver."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(url_map, *args, **kwargs)


def create_app(settings: Settings | None = None, *, overrides: dict[str, Any] | None = None) -> Flask:
    """Build the gateway. ``settings`` (or ``overrides`` of the environment) are for tests."""
    settings = settings or load_settings(overrides)
    configure_logs(settings.log_format)
    log.setLevel(settings.log_level)
    if overrides is None:  # the environment is what configures this gateway
        for warning in unknown_variables():
            log.warning(warning)

    app = Flask(__name__, instance_path=str(settings.instance_path.resolve()))
    app.config["MAX_CONTENT_LENGTH"] = settings.max_api_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    engine = make_engine(settings.resolved_database_url)
    app.extensions["pushgate"] = Runtime(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        box=SecretBox(resolve_secret_key(settings.secret_key, settings.instance_path)),
        integration_keys=TTLCache(settings.integration_key_cache_seconds),
    )
    app.teardown_appcontext(close_session)
    app.url_map.converters["int"] = StoreId  # before any route is added
    _register_blueprints(app)
    _register_error_handlers(app)
    _register_metrics(app)
    app.wsgi_app = TrustedProxies(app.wsgi_app, settings.proxy_networks)  # type: ignore[method-assign]
    app.wsgi_app = RequestIds(app.wsgi_app)  # type: ignore[method-assign]  # outermost: every answer has its id
    install_limits(app, settings)
    from gateway.cli import register_cli

    register_cli(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from gateway import ops
    from gateway.api import bp as api
    from gateway.sdk import classic, edge, standard, tracking

    for blueprint in (ops.bp, api, classic.bp, standard.bp, edge.bp, tracking.bp):
        app.register_blueprint(blueprint)
    from gateway import console

    console.install(app)


def _error(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify(error=code, message=message, request_id=current_request_id()), status


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ClientError)
    def client_error(exc: ClientError) -> tuple[Response, int]:
        return jsonify({**exc.to_dict(), "request_id": current_request_id()}), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response | str, int]:
        if request.blueprint is None and request.path.startswith("/console/"):
            from gateway.console import error_page

            return error_page(exc)  # an unknown console page: a page, not the API's JSON
        code = (exc.name or "error").lower().replace(" ", "_")
        return _error(exc.code or 500, code, exc.description or code)

    @app.errorhandler(OperationalError)
    @app.errorhandler(ProgrammingError)
    def database_unavailable(exc: Exception) -> tuple[Response, int]:
        log.error(
            "database error on %s %s (request %s): %s",
            request.method,
            request.path,
            current_request_id(),
            type(exc).__name__,
        )
        return _error(
            503,
            "database_unavailable",
            "the database is unreachable or not migrated (flask --app wsgi db upgrade)",
        )

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error on %s %s (request %s)", request.method, request.path, current_request_id())
        return _error(500, "internal_error", "an unexpected error occurred; it has been logged")


def _register_metrics(app: Flask) -> None:
    # Each (endpoint, method, status)'s labelled children, as .labels() returns them: looking
    # them up again on every request (validation, a lock, a tuple key) cost more than counting.
    children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    @app.before_request
    def start_timer() -> None:
        g._pushgate_started = time.perf_counter()

    @app.after_request
    def count(response: Response) -> Response:
        started = g.get("_pushgate_started")
        endpoint = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        key = (endpoint, request.method, response.status_code)
        labelled = children.get(key)
        if labelled is None:
            labelled = children[key] = (
                HTTP_REQUESTS.labels(endpoint, request.method, str(response.status_code)),
                HTTP_LATENCY.labels(endpoint),
            )
        labelled[0].inc()
        if started is not None:
            labelled[1].observe(time.perf_counter() - started)
        return response


def create_app_or_exit() -> Flask:
    """``create_app`` for entry points: a wrong setting, an unreachable database or a secret key
    that is not the database's stops start-up with one clear line."""
    from core.errors import ConfigError
    from core.secrets import wrong_key
    from store.db import check_reachable
    from store.secret_check import check_secret_key

    try:
        app = create_app()
        rt = app.extensions["pushgate"]
        check_reachable(rt.engine)
        check_secret_key(rt.engine, rt.box, wrong_key(rt.settings.secret_key, rt.settings.instance_path))
    except ConfigError as exc:
        if "gunicorn.workers" in sys.modules:  # a gunicorn worker loading the app (no --preload)
            # Exit code 3 is gunicorn's "worker failed to boot": the master stops with this one
            # line instead of starting the worker again and again.
            print(f"pushgate: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(3) from None
        raise SystemExit(f"pushgate: {exc}") from None
    return app
