"""WSGI entry point: ``flask --app wsgi ...`` and ``gunicorn wsgi:app``."""

from gateway.app import create_app_or_exit

app = create_app_or_exit()
