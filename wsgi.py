"""WSGI entry point: ``flask --app wsgi ...`` and ``gunicorn wsgi:app``."""

from gateway.app import create_app_or_exit
from gateway.worker import start_in_process_worker

app = create_app_or_exit()
start_in_process_worker(app)
