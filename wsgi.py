"""WSGI entry point: ``gunicorn wsgi:app`` from the repository root."""

from qfjobs.app import create_app
from qfjobs.tasks.joblog import configure_process_logging

configure_process_logging()
app = create_app()
