"""The interface between the delta engine and the data stores it writes.

A :class:`DataStore` is one transactional unit: one GeoPackage, SpatiaLite or
CSV/GeoJSON file, one shapefile with its sidecars, or one PostgreSQL database.
It hands out a :class:`LayerEditor` per layer. The engine runs every delta in a
``delta_scope()`` (a savepoint, or an undo log for rewritten files), so a delta
that fails leaves nothing behind, and calls ``commit()`` once at the end.

Editors take and return canonical Python values (see ``edits_values``); each
store converts them to its own storage.
"""

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol

from qfjobs.errors import DataSourceError
from qfjobs.geodata.edits_geometry import Geometry, GeometryColumn
from qfjobs.geodata.edits_target import LayerTarget
from qfjobs.geodata.edits_values import FieldInfo

logger = logging.getLogger(__name__)


class Unchanged(Enum):
    """Marker for "leave the geometry as it is"."""

    TOKEN = "unchanged"


UNCHANGED = Unchanged.TOKEN
GeometryChange = Geometry | None | Literal[Unchanged.TOKEN]


class FeatureWriteError(Exception):
    """The store refused a write for a reason the delta can be blamed for.

    Constraint violations, values the column type rejects, geometries the format
    cannot hold. The engine reports the delta as ``not_applied``; anything else
    raised by a store is unexpected and reported as ``error``.
    """


class StoreOpenError(DataSourceError):
    """The data file or database cannot be opened or is not writable as needed."""


@dataclass(frozen=True, slots=True)
class LayerSchema:
    fields: Mapping[str, FieldInfo]
    pk: str
    geometry: GeometryColumn | None
    #: Whether the store assigns a key itself when a create gives none.
    generates_keys: bool = True
    _folded: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        folded: dict[str, str] = {}
        for name in self.fields:
            folded.setdefault(name.casefold(), name)

        object.__setattr__(self, "_folded", folded)

    def field(self, name: str) -> FieldInfo | None:
        """The field called ``name``; case-insensitively when not exact."""
        info = self.fields.get(name)
        if info is not None:
            return info

        real = self._folded.get(name.casefold())
        return None if real is None else self.fields[real]

    @property
    def pk_field(self) -> FieldInfo:
        return self.fields[self.pk]


class Feature:
    """A stored feature; its geometry is decoded only when someone asks for it."""

    __slots__ = ("attributes", "key", "_decode", "_geometry", "_raw")

    def __init__(
        self,
        key: Any,
        attributes: dict[str, Any],
        raw_geometry: Any = None,
        decode: Callable[[Any], Geometry | None] | None = None,
    ) -> None:
        self.key = key
        self.attributes = attributes
        self._raw = raw_geometry
        self._decode = decode
        self._geometry: Geometry | None = None if decode else raw_geometry

    @property
    def geometry(self) -> Geometry | None:
        if self._decode is not None:
            self._geometry = None if self._raw is None else self._decode(self._raw)
            self._decode = None

        return self._geometry


class LayerEditor(Protocol):
    schema: LayerSchema

    def key_from_text(self, text: str) -> Any:
        """The native key for a key written as text; ``ValueError`` if impossible."""
        ...

    def get(self, key: Any) -> Feature | None:
        """The feature with ``key``; ``FeatureWriteError`` if several have it."""
        ...

    def read_ahead(self, keys: Sequence[Any]) -> None:
        """A hint: ``get`` will soon be asked for these keys, in this order.

        A store may read them in fewer queries; whatever it keeps must leave
        ``get`` answering exactly what the data holds when it is called.
        """
        ...

    def insert(self, attributes: dict[str, Any], geometry: Geometry | None) -> Any:
        """Add a feature and return its key."""
        ...

    def update(
        self, key: Any, attributes: dict[str, Any], geometry: GeometryChange
    ) -> None: ...

    def delete(self, key: Any) -> None: ...


class DataStore(Protocol):
    label: str

    def editor(self, target: LayerTarget) -> LayerEditor:
        """The editor of one layer; ``StoreOpenError`` when it cannot be edited."""
        ...

    def delta_scope(self) -> AbstractContextManager[None]:
        """Everything written inside is undone if the block raises."""
        ...

    def commit(self) -> bool:
        """Make the changes durable; return whether anything was written."""
        ...

    def close(self) -> None:
        """Release the store; uncommitted changes are discarded."""
        ...


def match_pk(names: Iterable[str], pk: str | None, layer: str) -> str:
    """The field named ``pk``, case-insensitively; ``StoreOpenError`` if none is."""
    if pk is None:
        raise StoreOpenError(f'Layer "{layer}" has no primary key')

    for name in names:
        if name.casefold() == pk.casefold():
            return name

    raise StoreOpenError(f'Layer "{layer}" has no primary-key field "{pk}"')


def feature_from_rows(
    rows: Sequence[Sequence[Any]],
    key: Any,
    layer: str,
    field_names: Sequence[str],
    decode: Callable[[Any], Geometry | None] | None,
) -> Feature | None:
    """The one feature a key lookup of an SQL store found, or None.

    Each row holds the attributes in ``field_names`` order, then, with a
    ``decode``, the raw geometry. Several rows for one key are refused.
    """
    if not rows:
        return None

    if len(rows) > 1:
        raise FeatureWriteError(f'Several features of "{layer}" have the key {key!r}')

    row = rows[0]
    attributes = dict(zip(field_names, row, strict=False))
    if decode is None:
        return Feature(key, attributes)

    return Feature(key, attributes, row[-1], decode)
