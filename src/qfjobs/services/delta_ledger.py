"""Settling an ended ``delta_apply`` job's deltas from its databases' ledgers.

A job whose worker died, or that ran far past its timeout, is failed from
outside (``services.reconcile``); a stopped job's deltas on PostgreSQL layers
are not released (``services.jobs.release_stopped_deltas``). Their started
deltas would all read ``error``, yet those on PostgreSQL layers may be
committed in their database already (the data commit comes just before the
job's results are stored). Each such delta is recorded in the database's
ledger in the data transaction (``qfjobs.geodata.deltas_ledger``), so when the
job is failed or stopped, :func:`settle_from_ledgers` reads the ledgers and
marks ``applied`` the deltas found there, with what the ledger recorded.

The databases are found through the project's current QGIS project file and
the worker's PostgreSQL settings (service file, allowed hosts, timeout), as the
job found them. Bounded: one connection per database with the configured
timeout and one query per database. A database that cannot be reached, a layer
no longer in the project file, or a database without ledger leave their deltas
to be failed as before (``error``): applying them again stays safe where a
ledger exists, as it skips the deltas it holds. A stop is settled right after
the work horse was ended: a commit the horse had sent but the database had not
yet carried out when its ledger was read is missed, and its deltas read
``error`` although applied (applying them again writes nothing twice).
"""

import logging
import math
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
from flask import current_app, has_app_context
from psycopg.conninfo import make_conninfo
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from qfjobs.errors import QfjobsError
from qfjobs.extensions import get_storage
from qfjobs.geodata.deltas_ledger import (
    LedgerEntry,
    canonical_id,
    ledger_exists,
    read_entries,
)
from qfjobs.geodata.deltas_results import DeltaOutcome
from qfjobs.geodata.deltas_results import DeltaStatus as OutcomeStatus
from qfjobs.models import Delta, DeltaStatus, Job, JobType, ProjectFile
from qfjobs.models.timestamps import utcnow
from qfjobs.qgis.datasource import parse_datasource
from qfjobs.qgis.maplayers import read_map_layers
from qfjobs.qgis.pgcheck import (
    LOOPBACK_HOSTS,
    PgOptions,
    connection_params,
    refused_host,
)
from qfjobs.qgis.pgservice import ServiceNotFound
from qfjobs.qgis.projectfile import open_project

logger = logging.getLogger(__name__)

POSTGRES_PROVIDER = "postgres"


def pg_options(config: Mapping[str, Any]) -> PgOptions:
    """How jobs connect to PostgreSQL layers, from the app's configuration."""
    allowed = config.get("QFJOBS_PG_ALLOWED_HOSTS", LOOPBACK_HOSTS)
    return PgOptions(
        service_file=config.get("QFJOBS_PG_SERVICE_FILE"),
        timeout=float(config.get("QFJOBS_PG_TIMEOUT", 3)),
        allowed_hosts=None if allowed is None else frozenset(allowed),
    )


def settle_from_ledgers(session: Session, job: Job) -> int:
    """Mark ``applied`` the started deltas of ``job`` its databases hold.

    Call it in the transaction that fails or stops the job, before its other
    started deltas become ``error``; that transaction commits the changes.
    Returns how many deltas were marked. Never raises for an unreachable or
    unreadable database.
    """
    if job.type != JobType.DELTA_APPLY:
        return 0

    started = session.execute(
        select(Delta.id, Delta.layer_id).where(
            Delta.job_id == job.id, Delta.last_status == DeltaStatus.STARTED
        )
    ).all()
    if not started:
        return 0

    if not has_app_context():
        logger.warning("%s: no app context: its databases' ledgers not read", job.id)
        return 0

    by_layer: dict[str, list[str]] = {}
    for delta_id, layer_id in started:
        by_layer.setdefault(layer_id, []).append(str(delta_id))
    databases = _databases(session, job, set(by_layer))
    entries: dict[str, LedgerEntry] = {}
    for conninfo, (label, layer_ids) in databases.items():
        ids = [delta_id for layer_id in layer_ids for delta_id in by_layer[layer_id]]
        entries.update(_read_ledger(job.id, conninfo, label, ids))
    return _mark_applied(session, job.id, entries)


def _databases(
    session: Session, job: Job, layer_ids: set[str]
) -> dict[str, tuple[str, list[str]]]:
    """The connection string of each database holding some of ``layer_ids``,
    with a label for logs and the layers in it."""
    project = job.project
    filename = project.project_filename
    sha256 = session.scalar(
        select(ProjectFile.sha256).where(
            ProjectFile.project_id == project.id, ProjectFile.path == filename
        )
    )
    if not filename or sha256 is None:
        logger.warning("%s: no project file; its databases' ledgers not read", job.id)
        return {}

    options = pg_options(current_app.config)
    with tempfile.TemporaryDirectory(prefix=f"qfjobs-ledger-{job.id}-") as tmp:
        get_storage().materialize(project.id, [(filename, sha256)], Path(tmp))
        try:
            opened = open_project(Path(tmp).joinpath(*filename.split("/")))
        except QfjobsError as exc:
            logger.warning(
                "%s: project file unreadable (%s): ledgers not read", job.id, exc
            )
            return {}
        layers = read_map_layers(opened.root)

    databases: dict[str, tuple[str, list[str]]] = {}
    for layer in layers:
        if layer.layer_id not in layer_ids or layer.provider != POSTGRES_PROVIDER:
            continue
        conninfo = _conninfo(job.id, layer.layer_id, layer.datasource, options)
        if conninfo is not None:
            label = f"{layer.layer_id} ({layer.name})"
            databases.setdefault(conninfo, (label, []))[1].append(layer.layer_id)
    return databases


def _conninfo(
    job_id: uuid.UUID, layer_id: str, datasource: str, options: PgOptions
) -> str | None:
    source = parse_datasource(POSTGRES_PROVIDER, datasource)
    try:
        params = connection_params(source, options)
    except ServiceNotFound as exc:
        logger.warning("%s: layer %s: %s; its ledger not read", job_id, layer_id, exc)
        return None

    refused = refused_host(params, options.allowed_hosts)
    if refused is not None:
        logger.warning(
            "%s: layer %s: host %s is not allowed; its ledger not read",
            job_id,
            layer_id,
            refused,
        )
        return None

    settings = {
        "connect_timeout": str(max(2, math.ceil(options.timeout))),
        "application_name": "qfjobs",
        **params,
    }
    return make_conninfo("", **settings)


def _read_ledger(
    job_id: uuid.UUID, conninfo: str, label: str, delta_ids: list[str]
) -> dict[str, LedgerEntry]:
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            if not ledger_exists(conn):
                logger.warning(
                    "%s: the database of layer %s has no ledger: %s deltas stay "
                    "unsettled",
                    job_id,
                    label,
                    len(delta_ids),
                )
                return {}
            entries = read_entries(conn, delta_ids)
    except psycopg.Error as exc:
        logger.error(
            "%s: the ledger of the database of layer %s cannot be read: %s",
            job_id,
            label,
            str(exc).strip(),
        )
        return {}

    logger.info(
        "%s: the ledger of the database of layer %s holds %s of %s started deltas",
        job_id,
        label,
        len(entries),
        len(delta_ids),
    )
    return entries


def _mark_applied(
    session: Session, job_id: uuid.UUID, entries: dict[str, LedgerEntry]
) -> int:
    if not entries:
        return 0

    rows = session.scalars(
        select(Delta).where(
            Delta.id.in_([uuid.UUID(key) for key in entries]),
            Delta.job_id == job_id,
            Delta.last_status == DeltaStatus.STARTED,
        )
    ).all()
    now = utcnow()
    for row in rows:
        entry = entries[canonical_id(str(row.id)) or ""]
        session.execute(
            update(Delta)
            .where(Delta.id == row.id, Delta.last_status == DeltaStatus.STARTED)
            .values(
                last_status=DeltaStatus.APPLIED,
                last_feedback=_feedback(row, entry, job_id),
                last_modified_pk=entry.modified_pk,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    if rows:
        session.get_one(Job, job_id).project.data_last_updated_at = now
    logger.warning(
        "%s: %s deltas found in their database's ledger marked applied",
        job_id,
        len(rows),
    )
    return len(rows)


def _feedback(row: Delta, entry: LedgerEntry, job_id: uuid.UUID) -> dict[str, Any]:
    outcome = DeltaOutcome(
        delta_index=row.position,
        delta_id=str(row.id),
        layer_id=row.layer_id,
        method=row.method,
        status=OutcomeStatus.APPLIED,
        message=entry.feedback_message(),
        feature_pk=str(row.content.get("sourcePk") or "") or None,
        modified_pk=entry.modified_pk,
        conflicts=entry.conflicts,
    )
    record = outcome.to_feedback(str(row.deltafile.id))
    record["qfjobs_status"] = DeltaStatus.APPLIED.value
    record["job_id"] = str(job_id)
    return record
