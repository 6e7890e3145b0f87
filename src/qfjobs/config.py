"""Configuration from ``QFJOBS_*`` environment variables.

The variables are the product's outside interface (see the README): the names
and defaults here must match it.
"""

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

INSTANCE_DIR = Path.cwd() / "instance"


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _host_list(raw: str) -> tuple[str, ...] | None:
    """Database hosts jobs may connect to; ``*`` allows any."""
    hosts = tuple(host.strip() for host in raw.split(",") if host.strip())
    return None if "*" in hosts else hosts


def load_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read the settings from ``env`` (the process environment by default)."""
    env = os.environ if env is None else env
    secret_key = env.get("QFJOBS_SECRET_KEY")
    if not secret_key:
        secret_key = secrets.token_hex(32)
        logger.warning(
            "QFJOBS_SECRET_KEY is not set; using a random key for this process"
        )

    storage_dir = Path(env.get("QFJOBS_STORAGE_DIR") or INSTANCE_DIR / "storage")
    database_url = env.get("QFJOBS_DATABASE_URL") or (
        f"sqlite:///{INSTANCE_DIR / 'qfjobs.sqlite3'}"
    )
    pg_service_file = env.get("QFJOBS_PG_SERVICE_FILE")
    return {
        "SECRET_KEY": secret_key,
        "QFJOBS_DATABASE_URL": database_url,
        "QFJOBS_REDIS_URL": env.get("QFJOBS_REDIS_URL") or "redis://127.0.0.1:6379/0",
        "QFJOBS_STORAGE_DIR": storage_dir.resolve(),
        "QFJOBS_QUEUE_NAME": env.get("QFJOBS_QUEUE_NAME") or "qfjobs",
        "QFJOBS_JOB_TIMEOUT": _int_env(env, "QFJOBS_JOB_TIMEOUT", 600),
        "QFJOBS_HEARTBEAT_TTL": _int_env(env, "QFJOBS_HEARTBEAT_TTL", 15),
        "QFJOBS_TRUSTED_PROXIES": _int_env(env, "QFJOBS_TRUSTED_PROXIES", 0),
        "QFJOBS_TOKEN_TTL_DAYS": _int_env(env, "QFJOBS_TOKEN_TTL_DAYS", 30),
        "QFJOBS_PG_SERVICE_FILE": Path(pg_service_file) if pg_service_file else None,
        "QFJOBS_PG_TIMEOUT": _int_env(env, "QFJOBS_PG_TIMEOUT", 3),
        "QFJOBS_PG_ALLOWED_HOSTS": _host_list(
            env.get("QFJOBS_PG_ALLOWED_HOSTS", "127.0.0.1,localhost,::1")
        ),
        "QFJOBS_ANSWER_CACHE_BYTES": _int_env(
            env, "QFJOBS_ANSWER_CACHE_BYTES", 16 * 1024**2
        ),
        "MAX_CONTENT_LENGTH": _int_env(env, "QFJOBS_MAX_UPLOAD_SIZE", 1024**3),
        # flask-smorest / OpenAPI
        "API_TITLE": "qfjobs",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs/",
        "OPENAPI_SWAGGER_UI_URL": "/swagger-ui/",
        "JSON_SORT_KEYS": False,
    }
