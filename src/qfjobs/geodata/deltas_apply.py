"""Apply QField deltas to the layers' real data: the core of the ``delta_apply`` job.

Call :func:`apply_deltas` with the job's deltas in order, the resolved target of
every layer id, the project's ``overwrite_conflicts`` and the server keys of
features that devices created earlier. It returns one :class:`DeltaOutcome` per
delta, the keys it gave new features, and which data files were committed.

Behaviour, per delta, in the given order:

* The layer is ``sourceLayerId`` (``localLayerId`` when empty). No target for it,
  or a target without primary key: ``not_applied``.
* The feature of a ``patch`` or ``delete`` is found by the server key recorded
  for ``(layer, clientId, localPk)`` when the same device created it earlier
  (in this run or an earlier one, through ``created_keys``), else by
  ``sourcePk``. The lookup is scoped by layer and device, so keys never mix
  (reference bug 8).
* ``create`` writes the given attributes (names the layer does not have are
  ignored with a note) and geometry. The device's key is kept when it is free,
  otherwise the store assigns one; the key is returned in ``created_keys``.
* ``patch`` writes only the attributes whose new value differs from the old one
  and the geometry only when ``new`` has one; ``delete`` removes the feature.
* Conflicts: the ``old`` attribute values, and the ``old`` geometry (as a shape,
  within ``ApplyOptions.geometry_tolerance``), are compared with the stored
  feature, type-aware (``edits_values``). An attribute in ``new`` but not in
  ``old`` counts as old NULL (reference bug 6). With ``overwrite_conflicts`` the
  delta is applied and the conflicts are reported; without, it is a
  ``conflict`` and nothing of it is written.
* Geometry: WKT with Z/M; ``nan`` Z/M become 0, a ``nan`` X/Y is refused;
  ``null`` clears it; an empty string is ignored on a layer without geometry and
  refused on a spatial one; the geometry is fitted to the layer (single/multi,
  Z/M) like QGIS does (``edits_geometry.conform``).

Data integrity: all deltas for one data store run in one transaction, each inside
a savepoint (or an undo log), so a delta that fails for any reason, expected or
not, leaves nothing behind and the next delta goes on. The stores are committed
only after every delta ran; if anything escapes (``on_progress`` raising, one of
``abort_on``, a ``KeyboardInterrupt``), every store is rolled back and no file is
changed. Each store commits atomically (``edits_sqlite``, ``edits_postgis``,
``edits_swap``); several stores of one job are not one atomic unit: a crash
between two commits leaves the first committed and the second not, and the
outcomes of a store whose commit failed are turned into ``error``. A store
that keeps a ledger of applied deltas (PostgreSQL, ``deltas_ledger``) records
each applied delta inside its savepoint, and a delta its ledger holds already
is not written again: it is reported ``applied`` as recorded.
"""

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qfjobs.geodata.deltafile import Delta, DeltaMethod, FeatureState
from qfjobs.geodata.deltas_ledger import LedgeredStore, LedgerEntry, canonical_id
from qfjobs.geodata.deltas_results import (
    ApplyResult,
    ClientFeatureKey,
    DeltaOutcome,
    DeltaStatus,
    StoreResult,
)
from qfjobs.geodata.edits_geometry import (
    Geometry,
    GeometryColumn,
    GeometryValueError,
    conform,
    geometries_equal,
)
from qfjobs.geodata.edits_open import open_store
from qfjobs.geodata.edits_store import (
    UNCHANGED,
    DataStore,
    Feature,
    FeatureWriteError,
    GeometryChange,
    LayerEditor,
    LayerSchema,
    StoreOpenError,
)
from qfjobs.geodata.edits_target import LayerTarget
from qfjobs.geodata.edits_values import FieldValueError, coerce, display, values_equal
from qfjobs.geodata.edits_wkt import parse_wkt, to_wkt

logger = logging.getLogger(__name__)

_EMPTY_STATE = FeatureState()
_MAX_SHOWN_WKT = 200


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    #: Relative/absolute tolerance when an old geometry is compared (see
    #: ``edits_geometry.geometries_equal``).
    geometry_tolerance: float = 1e-9


DEFAULT_OPTIONS = ApplyOptions()
#: Deltas whose features are looked up together ahead of them (``read_ahead``).
READ_AHEAD = 500


class _Refusal(Exception):
    """Ends a delta as ``conflict`` or ``not_applied``."""

    def __init__(
        self, status: DeltaStatus, message: str, conflicts: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.conflicts = tuple(conflicts)


@dataclass
class _Done:
    modified_pk: str
    conflicts: list[str] = field(default_factory=list)


@dataclass
class _StoreRun:
    """One data store and the deltas that go to it."""

    target: LayerTarget
    indices: list[int] = field(default_factory=list)
    layer_ids: dict[str, None] = field(default_factory=dict)
    store: DataStore | None = None
    open_error: str | None = None
    editors: dict[str, LayerEditor | str] = field(default_factory=dict)
    new_keys: dict[ClientFeatureKey, str] = field(default_factory=dict)
    committed: bool = False
    #: The store's ledger of applied deltas, when it keeps one.
    ledger: LedgeredStore | None = None
    #: Deltas of this run the ledger says are in the data already.
    recorded: dict[str, LedgerEntry] = field(default_factory=dict)
    #: What the job should say about the store (no ledger kept).
    note: str | None = None


@dataclass
class _Context:
    deltas: Sequence[Delta]
    targets: Mapping[str, LayerTarget | None]
    overwrite: bool
    #: Server keys of device-created features, by (layer, client, local pk):
    #: plain tuples, equal to ``ClientFeatureKey`` and cheaper to build.
    keys: dict[tuple[str, str, str], str]
    options: ApplyOptions
    abort_on: tuple[type[BaseException], ...]
    outcomes: list[DeltaOutcome | None]
    #: The job applying the deltas, recorded in the ledgers and logged first.
    job_id: str | None = None


def apply_deltas(
    deltas: Sequence[Delta],
    targets: Mapping[str, LayerTarget | None],
    *,
    overwrite_conflicts: bool,
    created_keys: Mapping[ClientFeatureKey, str] | None = None,
    options: ApplyOptions = DEFAULT_OPTIONS,
    on_progress: Callable[[int, int], None] | None = None,
    abort_on: tuple[type[BaseException], ...] = (),
    store_opener: Callable[[LayerTarget], DataStore] = open_store,
    job_id: str | None = None,
) -> ApplyResult:
    """Apply ``deltas`` in order and commit each data store once.

    ``targets`` maps a layer id to its data, ``None`` or a missing id meaning
    the layer is unknown. ``created_keys`` maps ``(layer id, client id, local
    pk)`` to the server key an earlier create got. ``on_progress(done, total)``
    is called after each delta. Exceptions of the ``abort_on`` types raised
    inside a delta (a job timeout, say) are not reported as that delta's error:
    they abort the run and roll every store back. ``job_id`` is recorded
    with each delta in the ledger of a store that keeps one (PostgreSQL): a
    delta already there is reported ``applied`` and not written again.
    """
    ctx = _Context(
        deltas=deltas,
        targets=targets,
        overwrite=overwrite_conflicts,
        keys={
            (key.layer_id, key.client_id, key.local_pk): pk
            for key, pk in (created_keys or {}).items()
        },
        options=options,
        abort_on=abort_on,
        outcomes=[None] * len(deltas),
        job_id=job_id,
    )
    runs = _plan(ctx)
    started = time.monotonic()
    try:
        _open_stores(ctx, runs, store_opener)
        done = sum(1 for outcome in ctx.outcomes if outcome is not None)
        for run in runs:
            for position, index in enumerate(run.indices):
                if position % READ_AHEAD == 0:
                    _read_ahead(ctx, run, run.indices[position : position + READ_AHEAD])
                ctx.outcomes[index] = _apply_one(ctx, run, index)
                done += 1
                if on_progress is not None:
                    on_progress(done, len(deltas))

        store_results = [_commit(ctx, run) for run in runs]
    finally:
        for run in runs:
            if run.store is not None:
                run.store.close()

    outcomes = tuple(o for o in ctx.outcomes if o is not None)
    logger.info(
        "%s: applied %s deltas in %.2f s: %s applied, %s conflicts, "
        "%s not applied, %s errors, %s unpermitted",
        job_id,
        len(deltas),
        time.monotonic() - started,
        *(sum(1 for o in outcomes if o.status is s) for s in DeltaStatus),
    )
    new_keys = {
        key: pk for run in runs if run.committed for key, pk in run.new_keys.items()
    }
    return ApplyResult(
        outcomes=outcomes, created_keys=new_keys, stores=tuple(store_results)
    )


def _plan(ctx: _Context) -> list[_StoreRun]:
    runs: dict[str, _StoreRun] = {}
    # store_key() resolves paths on disk: once per layer, not once per delta.
    keys: dict[str, str] = {}
    for index, delta in enumerate(ctx.deltas):
        target = ctx.targets.get(delta.source_layer_id)
        if target is None:
            ctx.outcomes[index] = _outcome(
                index,
                delta,
                DeltaStatus.NOT_APPLIED,
                f'No layer with id "{delta.source_layer_id}"',
            )
            continue

        key = keys.get(delta.source_layer_id)
        if key is None:
            key = keys[delta.source_layer_id] = target.store_key()
        run = runs.get(key)
        if run is None:
            run = runs[key] = _StoreRun(target)
        run.indices.append(index)
        run.layer_ids[delta.source_layer_id] = None

    return list(runs.values())


def _open_stores(
    ctx: _Context, runs: list[_StoreRun], opener: Callable[[LayerTarget], DataStore]
) -> None:
    for run in runs:
        try:
            run.store = opener(run.target)
        except StoreOpenError as exc:
            run.open_error = exc.message
            logger.warning(
                "%s: cannot open %s: %s", ctx.job_id, run.target.describe(), exc.message
            )
            continue
        if isinstance(run.store, LedgeredStore):
            _open_ledger(ctx, run, run.store)


def _open_ledger(ctx: _Context, run: _StoreRun, store: LedgeredStore) -> None:
    """Read which deltas of ``run`` the store's ledger holds already."""
    if store.ledger_missing is not None:
        run.note = (
            f"{store.label} keeps no ledger of applied deltas ({store.ledger_missing})"
            ": if the job is lost after its commit there, its deltas read error"
            " although the data holds them, and applying them again writes them"
            " again"
        )
        logger.warning("%s: %s", ctx.job_id, run.note)
        return

    run.ledger = store
    run.recorded = store.ledger_entries(ctx.deltas[i].uuid for i in run.indices)
    if run.recorded:
        logger.info(
            "%s: %s deltas are in the ledger of %s already; not written again",
            ctx.job_id,
            len(run.recorded),
            run.target.describe(),
        )


def _commit(ctx: _Context, run: _StoreRun) -> StoreResult:
    layer_ids = tuple(run.layer_ids)
    if run.store is None:
        return StoreResult(
            run.target.describe(), layer_ids, False, False, run.open_error
        )

    try:
        changed = run.store.commit()
    except Exception as exc:
        logger.exception("%s: commit of %s failed", ctx.job_id, run.store.label)
        _fail_applied(ctx, run, f"The changes could not be saved: {exc}")
        return StoreResult(run.store.label, layer_ids, False, False, str(exc), run.note)

    run.committed = True
    return StoreResult(run.store.label, layer_ids, True, changed, note=run.note)


def _fail_applied(ctx: _Context, run: _StoreRun, message: str) -> None:
    for index in run.indices:
        outcome = ctx.outcomes[index]
        if outcome is not None and outcome.status is DeltaStatus.APPLIED:
            ctx.outcomes[index] = _outcome(
                index, ctx.deltas[index], DeltaStatus.ERROR, message
            )


def _editor(run: _StoreRun, target: LayerTarget, layer_id: str) -> LayerEditor:
    cached = run.editors.get(layer_id)
    if cached is None:
        if run.store is None:
            cached = f"Cannot open the data of layer {layer_id}: {run.open_error}"
        elif target.pk_column is None:
            cached = f'Layer "{layer_id}" has no primary key, so it cannot be edited'
        else:
            try:
                cached = run.store.editor(target)
            except StoreOpenError as exc:
                cached = exc.message

        run.editors[layer_id] = cached

    if isinstance(cached, str):
        raise _Refusal(DeltaStatus.NOT_APPLIED, cached)

    return cached


def _read_ahead(ctx: _Context, run: _StoreRun, indices: Sequence[int]) -> None:
    """Tell each layer's editor which features the next deltas will look up."""
    keys: dict[str, list[Any]] = {}
    for index in indices:
        delta = ctx.deltas[index]
        if delta.method is DeltaMethod.CREATE:
            continue
        client_key = (delta.source_layer_id, delta.client_id, delta.local_pk)
        text = ctx.keys.get(client_key, delta.source_pk)
        if text != "":
            keys.setdefault(delta.source_layer_id, []).append(text)

    for layer_id, texts in keys.items():
        target = ctx.targets[layer_id]
        assert target is not None
        try:
            editor = _editor(run, target, layer_id)
        except _Refusal:
            continue
        editor.read_ahead(_native_keys(editor, texts))


def _native_keys(editor: LayerEditor, texts: Sequence[str]) -> list[Any]:
    keys = []
    for text in texts:
        try:
            keys.append(editor.key_from_text(text))
        except (ValueError, FieldValueError):
            continue
    return keys


def _apply_one(ctx: _Context, run: _StoreRun, index: int) -> DeltaOutcome:
    delta = ctx.deltas[index]
    if run.recorded:
        entry = run.recorded.get(canonical_id(delta.uuid) or "")
        if entry is not None:
            return _recorded_outcome(ctx, run, index, entry)

    notes: list[str] = []
    try:
        editor = run.editors.get(delta.source_layer_id)
        if editor is None or isinstance(editor, str):
            target = ctx.targets[delta.source_layer_id]
            assert target is not None
            editor = _editor(run, target, delta.source_layer_id)
        assert run.store is not None
        with run.store.delta_scope():
            done = _run_method(ctx, run, editor, delta, notes)
            if run.ledger is not None:
                run.ledger.record_delta(_ledger_entry(ctx, delta, done))
    except _Refusal as refusal:
        return _outcome(
            index,
            delta,
            refusal.status,
            refusal.message,
            refusal.conflicts,
            notes=notes,
        )
    except (FeatureWriteError, FieldValueError, GeometryValueError) as exc:
        return _outcome(index, delta, DeltaStatus.NOT_APPLIED, str(exc), notes=notes)
    except Exception as exc:
        if isinstance(exc, ctx.abort_on):
            raise

        logger.exception(
            "%s: unexpected error in delta %s (%s)", ctx.job_id, index, delta.uuid
        )
        message = f"Unexpected error: {type(exc).__name__}: {exc}"
        return _outcome(index, delta, DeltaStatus.ERROR, message, notes=notes)

    return _outcome(
        index,
        delta,
        DeltaStatus.APPLIED,
        _applied_message(done),
        done.conflicts,
        modified_pk=done.modified_pk,
        notes=notes,
    )


def _applied_message(done: _Done) -> str:
    return "Applied, overwriting conflicts" if done.conflicts else "Applied"


def _ledger_entry(ctx: _Context, delta: Delta, done: _Done) -> LedgerEntry:
    return LedgerEntry(
        delta_id=delta.uuid,
        job_id=ctx.job_id,
        modified_pk=done.modified_pk,
        message=_applied_message(done),
        conflicts=tuple(done.conflicts),
    )


def _recorded_outcome(
    ctx: _Context, run: _StoreRun, index: int, entry: LedgerEntry
) -> DeltaOutcome:
    """A delta the ledger holds: ``applied`` as recorded, nothing written."""
    delta = ctx.deltas[index]
    if delta.method is DeltaMethod.CREATE and entry.modified_pk is not None:
        client_key = (delta.source_layer_id, delta.client_id, delta.local_pk)
        ctx.keys[client_key] = entry.modified_pk
        run.new_keys[ClientFeatureKey(*client_key)] = entry.modified_pk
    return _outcome(
        index,
        delta,
        DeltaStatus.APPLIED,
        entry.feedback_message(),
        entry.conflicts,
        modified_pk=entry.modified_pk,
        notes=("Already in the data: not written again",),
    )


def _outcome(
    index: int,
    delta: Delta,
    status: DeltaStatus,
    message: str,
    conflicts: Sequence[str] = (),
    *,
    modified_pk: str | None = None,
    notes: Sequence[str] = (),
) -> DeltaOutcome:
    return DeltaOutcome(
        delta_index=index,
        delta_id=delta.uuid,
        layer_id=delta.source_layer_id,
        method=delta.method.value,
        status=status,
        message=message,
        feature_pk=delta.source_pk,
        modified_pk=modified_pk,
        conflicts=tuple(conflicts),
        notes=tuple(notes),
    )


def _run_method(
    ctx: _Context, run: _StoreRun, editor: LayerEditor, delta: Delta, notes: list[str]
) -> _Done:
    if delta.method is DeltaMethod.CREATE:
        return _create(ctx, run, editor, delta, notes)

    feature = _find(ctx, editor, delta)
    conflicts = _conflicts(ctx, editor.schema, feature, delta, notes)
    if conflicts and not ctx.overwrite:
        raise _Refusal(
            DeltaStatus.CONFLICT,
            "The feature was changed since the device read it",
            conflicts,
        )

    if delta.method is DeltaMethod.PATCH:
        _patch(editor, feature, delta, notes)
    else:
        editor.delete(feature.key)

    return _Done(str(feature.key), conflicts)


def _create(
    ctx: _Context, run: _StoreRun, editor: LayerEditor, delta: Delta, notes: list[str]
) -> _Done:
    schema = editor.schema
    new = delta.new or _EMPTY_STATE
    attributes: dict[str, Any] = {}
    for name, value in new.attributes.items():
        info = schema.fields.get(name) or schema.field(name)
        if info is None:
            notes.append(f'Attribute "{name}" ignored: the layer has no such field')
            continue

        attributes[info.name] = coerce(value, info)

    _release_taken_key(editor, attributes, notes)
    geometry = _create_geometry(schema, new, notes)
    key = editor.insert(attributes, geometry)
    server_key = str(key)
    ctx.keys[(delta.source_layer_id, delta.client_id, delta.local_pk)] = server_key
    run.new_keys[
        ClientFeatureKey(delta.source_layer_id, delta.client_id, delta.local_pk)
    ] = server_key
    return _Done(server_key)


def _release_taken_key(
    editor: LayerEditor, attributes: dict[str, Any], notes: list[str]
) -> None:
    pk = editor.schema.pk
    if attributes.get(pk) is None:
        attributes.pop(pk, None)
        return

    if editor.get(attributes[pk]) is not None:
        notes.append(
            f"The key {pk}={attributes[pk]} is taken; the feature got a new key"
        )
        del attributes[pk]


def _create_geometry(
    schema: LayerSchema, new: FeatureState, notes: list[str]
) -> Geometry | None:
    if schema.geometry is None:
        _note_ignored_geometry(new, notes)
        return None

    if not new.has_geometry:
        notes.append("The create has no geometry")
        return None

    return _delta_geometry(new.geometry, schema.geometry, notes)


def _note_ignored_geometry(state: FeatureState, notes: list[str]) -> None:
    if state.has_geometry and state.geometry:
        notes.append("Geometry ignored: the layer has no geometry")


def _delta_geometry(
    text: str | None, column: GeometryColumn, notes: list[str]
) -> Geometry | None:
    if text is None:
        return None

    if not text.strip():
        raise _Refusal(
            DeltaStatus.NOT_APPLIED,
            "The geometry is an empty string; a spatial layer needs WKT or null",
        )

    try:
        geometry = parse_wkt(text)
    except GeometryValueError as exc:
        raise _Refusal(DeltaStatus.NOT_APPLIED, f"Invalid geometry: {exc}") from exc

    fitted, fit_notes = conform(geometry, column)
    notes.extend(fit_notes)
    return fitted


def _find(ctx: _Context, editor: LayerEditor, delta: Delta) -> Feature:
    client_key = (delta.source_layer_id, delta.client_id, delta.local_pk)
    text = ctx.keys.get(client_key, delta.source_pk)
    pk = editor.schema.pk
    if text == "":
        raise _Refusal(
            DeltaStatus.NOT_APPLIED,
            "Unable to find feature: the delta has no sourcePk and no create of "
            f"this device gave local feature {delta.local_pk} a server key",
        )

    try:
        key = editor.key_from_text(text)
    except ValueError:
        raise _Refusal(
            DeltaStatus.NOT_APPLIED,
            f"Unable to find feature: {pk}={text!r} is no valid key",
        ) from None

    feature = editor.get(key)
    if feature is None:
        raise _Refusal(
            DeltaStatus.NOT_APPLIED, f"Unable to find feature with {pk}={text}"
        )

    return feature


def _conflicts(
    ctx: _Context, schema: LayerSchema, feature: Feature, delta: Delta, notes: list[str]
) -> list[str]:
    old = delta.old or _EMPTY_STATE
    new_attributes = delta.new.attributes if delta.new is not None else {}
    conflicts: list[str] = []
    current_values = feature.attributes
    for name, expected in old.attributes.items():
        info = schema.fields.get(name) or schema.field(name)
        if info is not None:
            current = current_values.get(info.name)
            if not values_equal(current, expected, info):
                conflicts.append(_attribute_conflict(name, current, expected))
    for name in new_attributes:
        info = None if name in old.attributes else schema.field(name)
        if info is not None:
            current = current_values.get(info.name)
            if current is not None:  # the old value counts as NULL
                conflicts.append(_attribute_conflict(name, current, None))

    if schema.geometry is not None and old.has_geometry:
        conflict = _geometry_conflict(ctx, feature, old.geometry, notes)
        if conflict:
            conflicts.append(conflict)

    return conflicts


def _attribute_conflict(name: str, current: Any, expected: Any) -> str:
    return (
        f'Conflict on attribute "{name}": the data has {display(current)}, '
        f"the device had {display(expected)}"
    )


def _geometry_conflict(
    ctx: _Context, feature: Feature, old_text: str | None, notes: list[str]
) -> str | None:
    try:
        expected = parse_wkt(old_text) if old_text and old_text.strip() else None
    except GeometryValueError as exc:
        notes.append(f"The old geometry was not compared, it is unreadable: {exc}")
        return None

    current = feature.geometry
    if geometries_equal(current, expected, ctx.options.geometry_tolerance):
        return None

    return (
        f"Conflict on the geometry: the data has {_short_wkt(current)}, "
        f"the device had {_short_wkt(expected)}"
    )


def _short_wkt(geometry: Geometry | None) -> str:
    if geometry is None:
        return "NULL"

    text = to_wkt(geometry)
    return text if len(text) <= _MAX_SHOWN_WKT else text[: _MAX_SHOWN_WKT - 3] + "..."


def _patch(
    editor: LayerEditor, feature: Feature, delta: Delta, notes: list[str]
) -> None:
    schema = editor.schema
    new = delta.new or _EMPTY_STATE
    old = delta.old or _EMPTY_STATE
    changes: dict[str, Any] = {}
    for name, value in new.attributes.items():
        info = schema.fields.get(name) or schema.field(name)
        if info is None:
            raise _Refusal(
                DeltaStatus.NOT_APPLIED,
                f'Unable to change attribute "{name}": the layer has no such field',
            )

        if info.name == schema.pk:
            if not values_equal(feature.attributes.get(info.name), value, info):
                notes.append(f'The primary key "{info.name}" is never changed')
            continue

        if name in old.attributes and values_equal(old.attributes[name], value, info):
            continue

        changes[info.name] = coerce(value, info)

    geometry = _patch_geometry(schema, old, new, notes)
    editor.update(feature.key, changes, geometry)


def _patch_geometry(
    schema: LayerSchema, old: FeatureState, new: FeatureState, notes: list[str]
) -> GeometryChange:
    if not new.has_geometry:
        return UNCHANGED

    if schema.geometry is None:
        _note_ignored_geometry(new, notes)
        return UNCHANGED

    if old.has_geometry and old.geometry == new.geometry:
        return UNCHANGED

    return _delta_geometry(new.geometry, schema.geometry, notes)
