"""The Flask app a worker process runs its jobs with.

``qfjobs worker`` builds the app once and registers it here before forking
work horses; a job function run any other way (a plain ``rq worker``) builds
one from the environment on first use.
"""

from flask import Flask

_app: Flask | None = None


def set_app(app: Flask) -> None:
    global _app
    _app = app


def get_app() -> Flask:
    global _app
    if _app is None:
        from qfjobs.app import create_app  # late: the app imports the tasks

        _app = create_app()
    return _app
