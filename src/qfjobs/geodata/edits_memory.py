"""Layers edited in memory and written back as a whole: CSV, GeoJSON, shapefiles...

Formats without transactions are read completely into a :class:`MemoryLayer`,
edited there, and written to new files that replace the old ones atomically when
the store commits (``edits_swap``). Nothing touches the data files before that,
so a crash while deltas are applied leaves them as they were.

Each edit is recorded in an undo log; ``delta_scope`` undoes a failed delta's
edits. Deleted rows stay in place as tombstones so an undo can bring them back
where they were. Keys are matched by value, with integer-looking texts equal to
the integers (a CSV ``"1"`` is the key ``1``); the key columns of these formats
are not unique by construction, so a key held by several rows is an error.
"""

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfjobs.geodata.edits_geometry import Geometry
from qfjobs.geodata.edits_store import (
    UNCHANGED,
    Feature,
    FeatureWriteError,
    GeometryChange,
    LayerSchema,
    StoreOpenError,
)
from qfjobs.geodata.edits_swap import recover_interrupted_swaps
from qfjobs.geodata.edits_target import FileLayer, LayerTarget
from qfjobs.geodata.edits_values import FieldKind

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class MemoryRow:
    attributes: dict[str, Any]
    geometry: Geometry | None
    #: What the format handler keeps to write an unchanged row back as it was.
    source: Any = None
    changed: bool = False
    deleted: bool = False


def index_key(value: Any) -> Any:
    """The value rows are matched by: integers and integer-looking text are one."""
    if value is None or isinstance(value, bool):
        return value

    if isinstance(value, int):
        return value

    if isinstance(value, float) and value.is_integer():
        return int(value)

    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        return text


class MemoryLayer:
    """A :class:`~qfjobs.geodata.edits_store.LayerEditor` over rows in memory."""

    def __init__(
        self,
        schema: LayerSchema,
        rows: list[MemoryRow],
        check_row: Callable[[MemoryRow], None] | None = None,
    ) -> None:
        self.schema = schema
        self.rows = rows
        #: Raises ``FeatureWriteError`` for a row the format cannot write.
        self.check_row = check_row
        self.changed = False
        self._undo: list[Callable[[], None]] = []
        self._index: dict[Any, list[int]] = {}
        for position, row in enumerate(rows):
            self._index.setdefault(index_key(row.attributes.get(schema.pk)), []).append(
                position
            )

    def key_from_text(self, text: str) -> Any:
        return text

    def _positions(self, key: Any) -> list[int]:
        return self._index.get(index_key(key), [])

    def _position(self, key: Any) -> int | None:
        positions = self._positions(key)
        if len(positions) > 1:
            raise FeatureWriteError(f"Several features have the key {key!r}")

        return positions[0] if positions else None

    def read_ahead(self, keys: Sequence[Any]) -> None:
        """Nothing to gain: every feature is in memory already."""

    def get(self, key: Any) -> Feature | None:
        position = self._position(key)
        if position is None:
            return None

        row = self.rows[position]
        return Feature(
            row.attributes[self.schema.pk], dict(row.attributes), row.geometry
        )

    def insert(self, attributes: dict[str, Any], geometry: Geometry | None) -> Any:
        pk = self.schema.pk
        values = {name: None for name in self.schema.fields}
        values.update(attributes)
        if values.get(pk) is None:
            values[pk] = self._next_key()

        position = len(self.rows)
        row = MemoryRow(values, geometry, changed=True)
        self.rows.append(row)
        self._index.setdefault(index_key(values[pk]), []).append(position)
        self._record(lambda: self._undo_insert(position, values[pk]))
        self._check(row)
        return values[pk]

    def _undo_insert(self, position: int, key: Any) -> None:
        self._index[index_key(key)].remove(position)
        del self.rows[position]

    def _next_key(self) -> Any:
        keys = [k for k in self._index if k is not None]
        numbers = [k for k in keys if isinstance(k, int)]
        if len(numbers) != len(keys):
            raise FeatureWriteError(
                f'The create gives no value for the key "{self.schema.pk}" and the '
                "existing keys are not numbers to continue"
            )

        following = max(numbers, default=0) + 1
        if self.schema.pk_field.kind is FieldKind.TEXT:
            return str(following)

        return following

    def update(
        self, key: Any, attributes: dict[str, Any], geometry: GeometryChange
    ) -> None:
        position = self._require(key)
        row = self.rows[position]
        before = (dict(row.attributes), row.geometry, row.changed)
        row.attributes.update(attributes)
        if geometry is not UNCHANGED:
            row.geometry = geometry

        row.changed = True
        self._record(lambda: self._restore(row, *before))
        self._check(row)

    @staticmethod
    def _restore(
        row: MemoryRow,
        attributes: dict[str, Any],
        geometry: Geometry | None,
        changed: bool,
    ) -> None:
        row.attributes, row.geometry, row.changed = attributes, geometry, changed

    def delete(self, key: Any) -> None:
        position = self._require(key)
        row = self.rows[position]
        row.deleted = True
        index = self._index[index_key(key)]
        index.remove(position)
        self._record(lambda: self._undo_delete(row, index, position))

    @staticmethod
    def _undo_delete(row: MemoryRow, index: list[int], position: int) -> None:
        row.deleted = False
        index.append(position)

    def _check(self, row: MemoryRow) -> None:
        if self.check_row is not None:
            self.check_row(row)

    def _require(self, key: Any) -> int:
        position = self._position(key)
        if position is None:
            raise FeatureWriteError(f"Feature {key!r} disappeared while it was edited")

        return position

    def _record(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)
        self.changed = True

    def mark(self) -> int:
        return len(self._undo)

    def undo_to(self, mark: int) -> None:
        while len(self._undo) > mark:
            self._undo.pop()()

    def live_rows(self) -> Iterator[MemoryRow]:
        return (row for row in self.rows if not row.deleted)


class RewriteStore:
    """Base of the stores that rewrite one file (or one file set) on commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)
        recover_interrupted_swaps(path.parent)
        self.layer: MemoryLayer | None = None
        self._loaded_for: tuple[str | None, str | None, bool] | None = None

    def editor(self, target: LayerTarget) -> MemoryLayer:
        assert isinstance(target, FileLayer)
        wanted = (target.layer_name, target.pk_column, target.is_spatial)
        if self.layer is None:
            self.layer = self.load(target)
            self._loaded_for = wanted
        elif wanted != self._loaded_for:
            raise StoreOpenError(
                f"{self.path} is used by two layers with different settings; "
                "only one can be edited in a job"
            )

        return self.layer

    def load(self, target: FileLayer) -> MemoryLayer:
        raise NotImplementedError

    def save(self, layer: MemoryLayer) -> None:
        raise NotImplementedError

    @contextmanager
    def delta_scope(self) -> Iterator[None]:
        layer = self.layer
        mark = layer.mark() if layer is not None else 0
        try:
            yield
        except BaseException:
            if self.layer is not None:
                self.layer.undo_to(mark if layer is self.layer else 0)

            raise

    def commit(self) -> bool:
        if self.layer is None or not self.layer.changed:
            return False

        self.save(self.layer)
        return True

    def close(self) -> None:
        self.layer = None
