"""What applying deltas reports back: per-delta outcomes and per-store results.

Statuses are the ``Delta.last_status`` values of the reference:

* ``applied``: the change is in the data (committed with its store);
* ``conflict``: the feature changed since the device saw it and overwriting is
  off, so nothing of the delta was written;
* ``not_applied``: the delta cannot be applied as it is: unknown layer, no
  primary key, feature not found, invalid value or geometry, a constraint of
  the data refused it;
* ``error``: something unexpected failed; nothing of the delta was written;
* ``unpermitted``: the project does not let field users make this delta
  (``qfjobs.geodata.deltas_permissions``); nothing of it was written.

``to_feedback`` gives the reference's per-delta feedback record (section 4.5 of
the behaviour reference), for ``Delta.last_feedback``.
"""

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

logger = logging.getLogger(__name__)


class DeltaStatus(StrEnum):
    APPLIED = "applied"
    CONFLICT = "conflict"
    NOT_APPLIED = "not_applied"
    ERROR = "error"
    UNPERMITTED = "unpermitted"


_FEEDBACK_STATUS = {
    DeltaStatus.APPLIED: ("status_applied", None),
    DeltaStatus.CONFLICT: ("status_conflict", "CONFLICT"),
    DeltaStatus.NOT_APPLIED: ("status_apply_failed", "ERROR"),
    DeltaStatus.ERROR: ("status_unknown_error", None),
    DeltaStatus.UNPERMITTED: ("status_unpermitted", "PERMISSION"),
}


class ClientFeatureKey(NamedTuple):
    """Names a feature created on a device: layer, device (client) and its local pk."""

    layer_id: str
    client_id: str
    local_pk: str


@dataclass(slots=True)
class DeltaOutcome:
    """One delta's result. Not frozen: the engine makes one per delta, and a
    frozen dataclass costs five times as much to build; nothing changes it."""

    #: Position of the delta in the sequence given to ``apply_deltas``.
    delta_index: int
    delta_id: str
    layer_id: str
    method: str
    status: DeltaStatus
    message: str
    #: The delta's ``sourcePk``, as in the reference feedback.
    feature_pk: str | None
    #: The server key of the feature the delta created, changed or deleted.
    modified_pk: str | None = None
    conflicts: tuple[str, ...] = ()
    #: Things worth knowing that did not stop the delta (ignored fields...).
    notes: tuple[str, ...] = ()

    def to_feedback(self, delta_file_id: str | None = None) -> dict[str, Any]:
        """The reference's feedback record for this delta."""
        status, e_type = _FEEDBACK_STATUS[self.status]
        return {
            "msg": self.message,
            "status": status,
            "e_type": e_type,
            "delta_file_id": delta_file_id,
            "layer_id": self.layer_id,
            "delta_index": self.delta_index,
            "delta_id": self.delta_id,
            "feature_pk": self.feature_pk,
            "modified_pk": self.modified_pk,
            "conflicts": list(self.conflicts) or None,
            "provider_errors": None,
            "method": self.method,
            "notes": list(self.notes) or None,
        }


@dataclass(frozen=True, slots=True)
class StoreResult:
    """One data file or database and whether its changes were committed."""

    label: str
    layer_ids: tuple[str, ...]
    committed: bool
    #: Whether the commit wrote anything (false when no delta was applied).
    changed: bool
    error: str | None = None
    #: Something the job should say about this store (a ledger it cannot keep).
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ApplyResult:
    outcomes: tuple[DeltaOutcome, ...]
    #: Keys the server gave features created in this run (committed stores only).
    created_keys: dict[ClientFeatureKey, str] = field(default_factory=dict)
    stores: tuple[StoreResult, ...] = ()

    @property
    def committed_stores(self) -> tuple[str, ...]:
        return tuple(s.label for s in self.stores if s.committed and s.changed)

    def count(self, status: DeltaStatus) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status is status)
