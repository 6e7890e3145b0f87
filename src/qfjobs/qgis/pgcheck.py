"""Checking PostgreSQL/PostGIS layers by connecting for real (psycopg).

The connection uses the layer URI's ``dbname host hostaddr port user password
sslmode`` (no other libpq option from an untrusted project is passed on),
on top of the ``service=`` definition from the service file. The session is
read-only with a statement timeout, and the connect timeout is ``timeout``
seconds (libpq's minimum is 2).

Host allow-list: a project is user content, so connecting wherever it says
would let users probe the worker's network. ``PgOptions.allowed_hosts``
names the hosts a job may connect to (``None`` allows any). The default is
the loopback names only; deployments set their database hosts. Names are
compared as written, without DNS look-ups; a Unix socket counts as
``localhost``.

Once connected, the table (or query layer) must exist and its geometry
column too. The primary key is ``key=``, else read from ``pg_index``.
``sql=`` filters are not evaluated.
"""

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from qfjobs.qgis.checkresult import (
    FieldInfo,
    SourceCheck,
    invalid_layer,
    invalid_provider,
)
from qfjobs.qgis.pgcatalog import TableFacts, read_table_facts
from qfjobs.qgis.pgservice import ServiceNotFound, read_service
from qfjobs.qgis.redaction import redact_values
from qfjobs.qgis.sourcemodel import DataSource

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
PROJECT_CONNECTION_KEYS = (
    "dbname",
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "sslmode",
)


@dataclass(frozen=True)
class PgOptions:
    """How PostgreSQL layers are checked."""

    service_file: Path | None = None
    timeout: float = 3.0
    allowed_hosts: frozenset[str] | None = LOOPBACK_HOSTS


def connection_params(source: DataSource, options: PgOptions) -> dict[str, str]:
    """libpq parameters for ``source``; raises :class:`ServiceNotFound`."""
    params: dict[str, str] = {}
    if source.service:
        params.update(read_service(source.service, options.service_file))

    for key in PROJECT_CONNECTION_KEYS:
        if source.params.get(key):
            params[key] = source.params[key]
    return params


def check_postgres(source: DataSource, options: PgOptions) -> SourceCheck:
    """Connect, then check the layer's table; never raises for bad sources."""
    try:
        params = connection_params(source, options)
    except ServiceNotFound as exc:
        return _unreachable(source, {}, str(exc))

    refused = refused_host(params, options.allowed_hosts)
    if refused is not None:
        return _unreachable(
            source,
            params,
            f'connections to host "{refused}" are not allowed on this server',
        )

    try:
        with _connect(params, options) as connection:
            return _check_table(connection, source, options)
    except psycopg.OperationalError as exc:
        return _unreachable(source, params, _reason(exc, params))
    except psycopg.Error as exc:
        return invalid_provider(
            "The database refused to describe the layer.", _reason(exc, params)
        )


def refused_host(params: dict[str, str], allowed: frozenset[str] | None) -> str | None:
    """The first host of ``params`` that ``allowed`` does not name, if any."""
    if allowed is None:
        return None

    names = [
        h for key in ("host", "hostaddr") for h in params.get(key, "").split(",") if h
    ]
    for name in names or ["localhost"]:
        local_socket = name.startswith(("/", "@"))
        if not local_socket and name.strip().lower() not in allowed:
            return name.strip()
        if local_socket and "localhost" not in allowed:
            return name
    return None


def _connect(
    params: dict[str, str], options: PgOptions
) -> psycopg.Connection[tuple[object, ...]]:
    timeout_ms = max(int(options.timeout * 1000), 100)
    session = f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms}"
    settings = {
        "connect_timeout": str(max(2, math.ceil(options.timeout))),
        "application_name": "qfjobs",
        "gssencmode": "disable",
        **params,
        "options": f"{params.get('options', '')} {session}".strip(),
    }
    return psycopg.connect(make_conninfo("", **settings), autocommit=True)


def _unreachable(
    source: DataSource, params: dict[str, str], reason: str
) -> SourceCheck:
    host = params.get("host") or source.host
    if host:
        summary = f'Unable to connect to host "{host}".'
    elif source.service:
        summary = f'Unable to connect to service "{source.service}".'
    else:
        summary = "Unable to connect to the database."

    if source.params.get("authcfg") and not params.get("password"):
        reason += (
            " (its authcfg cannot be resolved: the QGIS authentication database"
            " is not available on the server)"
        )
    logger.info("PostgreSQL layer unreachable: %s", summary)
    return invalid_provider(summary, redact_values(reason, [params.get("password")]))


def _reason(exc: psycopg.Error, params: dict[str, str]) -> str:
    return redact_values(" ".join(str(exc).split()), [params.get("password")])


def _check_table(
    connection: psycopg.Connection[tuple[object, ...]],
    source: DataSource,
    options: PgOptions,
) -> SourceCheck:
    table = source.table
    if table is None or not table.table:
        return invalid_layer("The datasource names no table.")

    facts = read_table_facts(connection, table)
    if facts is None:
        return invalid_provider(
            f'Table "{_display_name(source)}" not found in the database.'
        )

    if table.geometry_column and table.geometry_column not in facts.columns:
        return invalid_provider(
            f'Column "{table.geometry_column}" not found in "{_display_name(source)}".'
        )

    return _valid(source, facts)


def _valid(source: DataSource, facts: TableFacts) -> SourceCheck:
    table = source.table
    assert table is not None
    srid = facts.srid or (
        int(table.srid) if table.srid and table.srid.isdigit() else None
    )
    keys = (table.key.strip('"'),) if table.key else facts.primary_keys
    geometry = facts.geometry_type or table.wkb_type
    return SourceCheck(
        is_valid=True,
        geometry_type=geometry if table.geometry_column else "NoGeometry",
        crs=f"EPSG:{srid}" if srid and srid > 0 else None,
        feature_count=facts.feature_count,
        fields=tuple(
            FieldInfo(name=name, type=type_name)
            for name, type_name in facts.columns.items()
            if name != table.geometry_column
        ),
        primary_keys=keys,
        driver="PostgreSQL",
    )


def _display_name(source: DataSource) -> str:
    assert source.table is not None
    if source.table.is_query:
        return "query layer"
    if source.table.schema:
        return f"{source.table.schema}.{source.table.table}"
    return source.table.table
