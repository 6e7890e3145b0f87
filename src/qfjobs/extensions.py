"""The app's shared clients (store, files, Redis, queue), kept in ``app.extensions``."""

from flask import Flask, current_app
from redis import Redis
from rq import Queue
from sqlalchemy.orm import Session

from qfjobs.db import Database
from qfjobs.services import queue as rq_queue
from qfjobs.services.login_throttle import LoginThrottle
from qfjobs.storage import ProjectStorage


def init_extensions(app: Flask) -> None:
    Database(app.config["QFJOBS_DATABASE_URL"]).init_app(app)
    app.extensions["qfjobs.storage"] = ProjectStorage(app.config["QFJOBS_STORAGE_DIR"])
    connection = rq_queue.connect(app.config["QFJOBS_REDIS_URL"])
    app.extensions["qfjobs.redis"] = connection
    app.extensions["qfjobs.login_throttle"] = LoginThrottle(
        connection, app.config["QFJOBS_QUEUE_NAME"]
    )
    app.extensions["qfjobs.queue"] = rq_queue.get_queue(
        connection, app.config["QFJOBS_QUEUE_NAME"]
    )


def get_db(app: Flask | None = None) -> Database:
    database: Database = (app or current_app).extensions["qfjobs.db"]
    return database


def get_session() -> Session:
    return get_db().session()


def get_storage() -> ProjectStorage:
    storage: ProjectStorage = current_app.extensions["qfjobs.storage"]
    return storage


def get_redis() -> Redis:
    connection: Redis = current_app.extensions["qfjobs.redis"]
    return connection


def get_login_throttle() -> LoginThrottle:
    throttle: LoginThrottle = current_app.extensions["qfjobs.login_throttle"]
    return throttle


def get_queue() -> Queue:
    queue: Queue = current_app.extensions["qfjobs.queue"]
    return queue
