"""The ledger of applied deltas kept inside a PostgreSQL data database.

A PostGIS layer is edited in its own database, whose commit cannot be joined
with the commit of the qfjobs store. So every delta written there is also
recorded, in the same data transaction, as one row of ``qfjobs.applied_deltas``
(its id, the job, the key it created or changed, its message and conflicts).
The data and the ledger row commit together or not at all, which makes the
ledger the truth about what the data holds:

* applying skips a delta already in the ledger and reports it ``applied``
  from there, so no change is ever written twice;
* when a job is lost after its data commit, its deltas found in the ledger
  are marked ``applied`` (``qfjobs.services.delta_ledger``).

The table lives in a dedicated ``qfjobs`` schema, one per database whatever
the layers' schemas are, so it never shows up among a schema's layers. It is
created on first use; a role that may not create it (and finds none it may
write) works without ledger, as before, and the job says so. An administrator
can create it beforehand with :data:`LEDGER_DDL` and grant ``SELECT, INSERT``.
"""

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import psycopg
from psycopg.types.json import Jsonb

logger = logging.getLogger(__name__)

SCHEMA = "qfjobs"
TABLE = "applied_deltas"
QUALIFIED = f"{SCHEMA}.{TABLE}"
LEDGER_DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"CREATE TABLE IF NOT EXISTS {QUALIFIED} ("
    " delta_id uuid PRIMARY KEY,"
    " job_id uuid,"
    " applied_at timestamptz NOT NULL DEFAULT now(),"
    " modified_pk text,"
    " message text NOT NULL,"
    " conflicts jsonb)",
)
_SELECT_SQL = (
    f"SELECT delta_id::text, job_id::text, modified_pk, message, conflicts "
    f"FROM {QUALIFIED} WHERE delta_id = ANY(%s)"
)
_INSERT_SQL = (
    f"INSERT INTO {QUALIFIED} (delta_id, job_id, modified_pk, message, conflicts) "
    "VALUES (%s, %s, %s, %s, %s)"
)
_WRITABLE_SQL = (
    "SELECT has_table_privilege(%s, 'SELECT') AND has_table_privilege(%s, 'INSERT')"
)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A delta whose change is committed in the data."""

    delta_id: str
    job_id: str | None
    modified_pk: str | None
    message: str
    conflicts: tuple[str, ...] = ()

    def feedback_message(self) -> str:
        job = self.job_id or "an earlier job"
        return f"{self.message} (recorded in the data's ledger by job {job})"


@runtime_checkable
class LedgeredStore(Protocol):
    """A data store that keeps a ledger of the deltas it committed."""

    label: str
    #: Why the store keeps no ledger; ``None`` when it does.
    ledger_missing: str | None

    def ledger_entries(self, delta_ids: Iterable[str]) -> dict[str, LedgerEntry]:
        """The entries of those deltas already in the ledger."""
        ...

    def record_delta(self, entry: LedgerEntry) -> None:
        """Record a delta in the open transaction, beside its change."""
        ...


def ensure_ledger(conn: psycopg.Connection[Any]) -> str | None:
    """Make sure the ledger exists and may be written; why not, when it cannot.

    Runs and ends its own transaction, so ``conn`` must have none open.
    """
    try:
        if _exists(conn) is None:
            for statement in LEDGER_DDL:
                conn.execute(statement)
            conn.commit()
        writable = conn.execute(_WRITABLE_SQL, (QUALIFIED, QUALIFIED)).fetchone()
        conn.commit()
    except psycopg.Error as exc:
        conn.rollback()
        reason = (exc.diag.message_primary or str(exc)).strip()
        return f"the ledger {QUALIFIED} cannot be created: {reason}"

    if not (writable and writable[0]):
        return f"the ledger {QUALIFIED} may not be read and written by this role"
    return None


def ledger_exists(conn: psycopg.Connection[Any]) -> bool:
    return _exists(conn) is not None


def _exists(conn: psycopg.Connection[Any]) -> Any:
    row = conn.execute("SELECT to_regclass(%s)", (QUALIFIED,)).fetchone()
    return None if row is None else row[0]


def read_entries(
    conn: psycopg.Connection[Any], delta_ids: Iterable[str]
) -> dict[str, LedgerEntry]:
    """The ledger entries of ``delta_ids`` (ids that are no UUID are never in it)."""
    ids = [parsed for parsed in map(_as_uuid, delta_ids) if parsed is not None]
    if not ids:
        return {}

    entries: dict[str, LedgerEntry] = {}
    for delta_id, job_id, modified_pk, message, conflicts in conn.execute(
        _SELECT_SQL, (ids,)
    ):
        entries[delta_id] = LedgerEntry(
            delta_id=delta_id,
            job_id=job_id,
            modified_pk=modified_pk,
            message=message,
            conflicts=tuple(conflicts or ()),
        )
    return entries


def write_entry(conn: psycopg.Connection[Any], entry: LedgerEntry) -> None:
    """Insert ``entry``; a delta already recorded raises ``IntegrityError``."""
    conn.execute(
        _INSERT_SQL,
        (
            uuid.UUID(entry.delta_id),
            None if entry.job_id is None else uuid.UUID(entry.job_id),
            entry.modified_pk,
            entry.message,
            Jsonb(list(entry.conflicts)) if entry.conflicts else None,
        ),
    )


def canonical_id(text: str) -> str | None:
    """The delta id as the ledger spells it; ``None`` when it is no UUID."""
    parsed = _as_uuid(text)
    return None if parsed is None else str(parsed)


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return None
