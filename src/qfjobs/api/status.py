"""``status/``: whether the service and what it depends on answer."""

from typing import Any

from flask.views import MethodView
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from qfjobs.api.base import Blueprint
from qfjobs.extensions import get_redis, get_session

URL = "status"
blp = Blueprint("status", __name__, description="Service status")


@blp.route("/")
class Status(MethodView):
    @blp.response(200)
    def get(self) -> dict[str, Any]:
        """Service health: database and Redis."""
        database = "ok"
        try:
            get_session().execute(text("SELECT 1"))
        except SQLAlchemyError:
            database = "unavailable"
        redis = "ok"
        try:
            get_redis().ping()
        except RedisError:
            redis = "unavailable"
        return {"database": database, "redis": redis, "detail": "qfjobs"}
