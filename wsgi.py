"""WSGI entry point: ``flask --app wsgi ...`` and ``gunicorn -c gunicorn.conf.py wsgi:app``.

Importing it starts nothing. The in-process worker starts in the process that serves: in each
gunicorn worker from ``gunicorn.conf.py``'s hook, under ``flask --app wsgi run`` (or a server
without that hook) with the first request (see :mod:`gateway.worker`).
"""

from gateway.app import create_app_or_exit
from gateway.worker import start_with_first_request

app = create_app_or_exit()
start_with_first_request(app)
