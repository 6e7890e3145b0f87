"""A small geometry model for applying edits: types, envelopes, fitting, equality.

The engine reads geometries from several encodings (WKT from deltas, ISO WKB,
GeoPackage and SpatiaLite blobs, shapefile records, GeoJSON) and writes them back.
GEOS (shapely) cannot hold curves, and its WKT reader refuses what QField writes
(``POINTZ (666 0)``), so all of them meet in this plain model instead.

A :class:`Geometry` is one node: simple types (points, line strings, circular
strings) carry ``coords``; everything else carries ``parts``. Polygon and triangle
rings are ``LINESTRING`` parts. Coordinates are tuples laid out ``x, y[, z][, m]``.
"""

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

logger = logging.getLogger(__name__)

Coord = tuple[float, ...]


class GeometryValueError(ValueError):
    """A geometry that cannot be read, or cannot be stored in a layer."""


class GeomType(IntEnum):
    """ISO 13249 / OGC type codes (the WKB codes without dimension offsets)."""

    GEOMETRY = 0
    POINT = 1
    LINESTRING = 2
    POLYGON = 3
    MULTIPOINT = 4
    MULTILINESTRING = 5
    MULTIPOLYGON = 6
    GEOMETRYCOLLECTION = 7
    CIRCULARSTRING = 8
    COMPOUNDCURVE = 9
    CURVEPOLYGON = 10
    MULTICURVE = 11
    MULTISURFACE = 12
    CURVE = 13
    SURFACE = 14
    POLYHEDRALSURFACE = 15
    TIN = 16
    TRIANGLE = 17


COORD_TYPES = frozenset({GeomType.POINT, GeomType.LINESTRING, GeomType.CIRCULARSTRING})
RING_TYPES = frozenset({GeomType.POLYGON, GeomType.TRIANGLE})
CURVED_TYPES = frozenset(
    {
        GeomType.CIRCULARSTRING,
        GeomType.COMPOUNDCURVE,
        GeomType.CURVEPOLYGON,
        GeomType.MULTICURVE,
        GeomType.MULTISURFACE,
    }
)
_MULTI_OF = {
    GeomType.POINT: GeomType.MULTIPOINT,
    GeomType.LINESTRING: GeomType.MULTILINESTRING,
    GeomType.POLYGON: GeomType.MULTIPOLYGON,
    GeomType.CIRCULARSTRING: GeomType.MULTICURVE,
    GeomType.COMPOUNDCURVE: GeomType.MULTICURVE,
    GeomType.CURVEPOLYGON: GeomType.MULTISURFACE,
}
#: Which concrete types a column of a given (abstract) type may hold.
_SUBTYPES: dict[GeomType, frozenset[GeomType]] = {
    GeomType.CURVE: frozenset(
        {GeomType.LINESTRING, GeomType.CIRCULARSTRING, GeomType.COMPOUNDCURVE}
    ),
    GeomType.COMPOUNDCURVE: frozenset({GeomType.LINESTRING, GeomType.CIRCULARSTRING}),
    GeomType.SURFACE: frozenset(
        {GeomType.POLYGON, GeomType.CURVEPOLYGON, GeomType.TRIANGLE}
    ),
    GeomType.CURVEPOLYGON: frozenset({GeomType.POLYGON, GeomType.TRIANGLE}),
    GeomType.POLYGON: frozenset({GeomType.TRIANGLE}),
    GeomType.MULTICURVE: frozenset({GeomType.MULTILINESTRING}),
    GeomType.MULTISURFACE: frozenset({GeomType.MULTIPOLYGON}),
    GeomType.GEOMETRYCOLLECTION: frozenset(
        {
            GeomType.MULTIPOINT,
            GeomType.MULTILINESTRING,
            GeomType.MULTIPOLYGON,
            GeomType.MULTICURVE,
            GeomType.MULTISURFACE,
        }
    ),
}


@dataclass(frozen=True, slots=True)
class Envelope:
    min_x: float
    max_x: float
    min_y: float
    max_y: float

    def union(self, other: "Envelope | None") -> "Envelope":
        if other is None:
            return self

        return Envelope(
            min(self.min_x, other.min_x),
            max(self.max_x, other.max_x),
            min(self.min_y, other.min_y),
            max(self.max_y, other.max_y),
        )


@dataclass(frozen=True, slots=True)
class Geometry:
    type: GeomType
    has_z: bool = False
    has_m: bool = False
    coords: tuple[Coord, ...] = ()
    parts: tuple["Geometry", ...] = ()

    @property
    def dims(self) -> int:
        return 2 + self.has_z + self.has_m

    @property
    def is_empty(self) -> bool:
        if self.type in COORD_TYPES:
            return not self.coords

        return all(part.is_empty for part in self.parts)

    def iter_coords(self) -> Iterator[Coord]:
        if self.type in COORD_TYPES:
            yield from self.coords
            return

        for part in self.parts:
            yield from part.iter_coords()

    def envelope(self) -> Envelope | None:
        """XY bounds, or ``None`` for an empty geometry."""
        if self.type is GeomType.POINT:
            if not self.coords:
                return None

            x, y = self.coords[0][0], self.coords[0][1]
            return Envelope(x, x, y, y)

        coords = list(self.iter_coords())
        if not coords:
            return None

        xs = [c[0] for c in coords]
        ys = [c[1] for c in coords]
        return Envelope(min(xs), max(xs), min(ys), max(ys))

    def z_range(self) -> tuple[float, float] | None:
        return self._ordinate_range(2) if self.has_z else None

    def m_range(self) -> tuple[float, float] | None:
        return self._ordinate_range(2 + self.has_z) if self.has_m else None

    def _ordinate_range(self, index: int) -> tuple[float, float] | None:
        values = [c[index] for c in self.iter_coords()]
        return (min(values), max(values)) if values else None


@dataclass(frozen=True, slots=True)
class GeometryColumn:
    """What a layer's geometry column accepts.

    ``z`` and ``m`` use the GeoPackage convention: 0 prohibited, 1 mandatory,
    2 optional.
    """

    name: str
    type: GeomType
    srid: int
    z: int = 2
    m: int = 2


def with_dimensions(geom: Geometry, has_z: bool, has_m: bool) -> Geometry:
    """``geom`` with Z and M added (as 0) or dropped to match the flags."""
    if geom.has_z == has_z and geom.has_m == has_m:
        return geom

    if geom.type in COORD_TYPES:
        coords = tuple(
            _reshape(c, geom.has_z, geom.has_m, has_z, has_m) for c in geom.coords
        )
        return Geometry(geom.type, has_z, has_m, coords=coords)

    parts = tuple(with_dimensions(part, has_z, has_m) for part in geom.parts)
    return Geometry(geom.type, has_z, has_m, parts=parts)


def _reshape(c: Coord, had_z: bool, had_m: bool, has_z: bool, has_m: bool) -> Coord:
    z = c[2] if had_z else 0.0
    m = c[2 + had_z] if had_m else 0.0
    out: tuple[float, ...] = (c[0], c[1])
    if has_z:
        out += (z,)

    if has_m:
        out += (m,)

    return out


def type_fits(geom_type: GeomType, column_type: GeomType) -> bool:
    """Whether a column declared as ``column_type`` may hold ``geom_type``."""
    if column_type is GeomType.GEOMETRY or geom_type == column_type:
        return True

    return geom_type in _SUBTYPES.get(column_type, frozenset())


def conform(geom: Geometry, column: GeometryColumn) -> tuple[Geometry, list[str]]:
    """Fit ``geom`` to ``column`` the way QGIS does before it writes a feature.

    A single geometry becomes a one-part multi geometry for a multi column, a
    one-part multi geometry becomes single for a single column, and Z/M are
    added (as 0) when the column requires them and dropped when it forbids them.
    Anything else that does not fit raises :class:`GeometryValueError`.
    """
    notes: list[str] = []
    fitted = _fit_type(geom, column.type)
    if fitted.type != geom.type:
        notes.append(f"geometry converted from {geom.type.name} to {fitted.type.name}")

    has_z = _dimension_wanted(fitted.has_z, column.z)
    has_m = _dimension_wanted(fitted.has_m, column.m)
    if fitted.has_z and not has_z:
        notes.append("Z values dropped: the layer has no Z")

    if fitted.has_m and not has_m:
        notes.append("M values dropped: the layer has no M")

    return with_dimensions(fitted, has_z, has_m), notes


def _dimension_wanted(present: bool, mode: int) -> bool:
    if mode == 1:
        return True

    if mode == 0:
        return False

    return present


def _fit_type(geom: Geometry, column_type: GeomType) -> Geometry:
    if type_fits(geom.type, column_type):
        return geom

    multi = _MULTI_OF.get(geom.type)
    if multi is not None and type_fits(multi, column_type):
        parts = () if geom.is_empty else (geom,)
        return Geometry(multi, geom.has_z, geom.has_m, parts=parts)

    if geom.type in _MULTI_OF.values() and len(geom.parts) <= 1:
        if not geom.parts:
            return Geometry(column_type, geom.has_z, geom.has_m)

        if type_fits(geom.parts[0].type, column_type):
            return geom.parts[0]

    raise GeometryValueError(
        f"a {geom.type.name} geometry does not fit a {column_type.name} layer"
    )


def check_finite_xy(geom: Geometry) -> None:
    """Raise unless every X and Y is a finite number."""
    for c in geom.iter_coords():
        if not (math.isfinite(c[0]) and math.isfinite(c[1])):
            raise GeometryValueError(
                f"coordinate ({c[0]!r} {c[1]!r}) is not a finite X/Y position"
            )


def geometries_equal(a: Geometry | None, b: Geometry | None, tolerance: float) -> bool:
    """Whether two geometries are the same shape, within ``tolerance``.

    ``None`` and empty geometries are equal. One-part multi geometries equal
    their single part. Ring start points and ring direction do not matter, nor
    does the order of parts in a multi geometry. Z and M are compared only when
    both sides have them, with NaN taken as 0 (deltas store NaN as 0).
    ``tolerance`` is absolute and relative: two ordinates match when they differ
    by at most ``tolerance * max(1, |value|)``.
    """
    if a is None or a.is_empty:
        return b is None or b.is_empty

    if b is None or b.is_empty:
        return False

    dims = _shared_dims(a, b)
    return _nodes_equal(_unwrap(a), _unwrap(b), dims, tolerance)


def _shared_dims(a: Geometry, b: Geometry) -> tuple[bool, bool]:
    return (a.has_z and b.has_z, a.has_m and b.has_m)


def _unwrap(geom: Geometry) -> Geometry:
    if geom.type in _MULTI_OF.values() and len(geom.parts) == 1:
        return geom.parts[0]

    return geom


def _nodes_equal(
    a: Geometry, b: Geometry, dims: tuple[bool, bool], tolerance: float
) -> bool:
    if a.type != b.type:
        return False

    if a.type in COORD_TYPES:
        return _sequences_equal(a, b, dims, tolerance, closed=False)

    if len(a.parts) != len(b.parts):
        return False

    if a.type in RING_TYPES:
        return all(
            _sequences_equal(ra, rb, dims, tolerance, closed=True)
            for ra, rb in zip(a.parts, b.parts, strict=True)
        )

    if a.type is GeomType.COMPOUNDCURVE:
        return all(
            _nodes_equal(pa, pb, dims, tolerance)
            for pa, pb in zip(a.parts, b.parts, strict=True)
        )

    return _parts_match_in_any_order(a.parts, b.parts, dims, tolerance)


def _parts_match_in_any_order(
    a_parts: tuple[Geometry, ...],
    b_parts: tuple[Geometry, ...],
    dims: tuple[bool, bool],
    tolerance: float,
) -> bool:
    remaining = list(b_parts)
    for part in a_parts:
        for i, candidate in enumerate(remaining):
            if _nodes_equal(part, candidate, dims, tolerance):
                del remaining[i]
                break
        else:
            return False

    return True


def _sequences_equal(
    a: Geometry, b: Geometry, dims: tuple[bool, bool], tolerance: float, closed: bool
) -> bool:
    ca = [_comparable(c, a, dims) for c in a.coords]
    cb = [_comparable(c, b, dims) for c in b.coords]
    if len(ca) != len(cb):
        return False

    if not closed or len(ca) < 4 or ca[0] != ca[-1] or cb[0] != cb[-1]:
        return _coords_equal(ca, cb, tolerance)

    # A closed ring may start anywhere and run either way.
    ring_b = cb[:-1]
    for candidate in (ring_b, ring_b[::-1]):
        for shift in range(len(candidate)):
            if _coord_equal(ca[0], candidate[shift], tolerance):
                rotated = candidate[shift:] + candidate[:shift]
                if _coords_equal(ca[:-1], rotated, tolerance):
                    return True

    return False


def _comparable(c: Coord, owner: Geometry, dims: tuple[bool, bool]) -> Coord:
    out: tuple[float, ...] = (c[0], c[1])
    if dims[0]:
        out += (_nan_as_zero(c[2]),)

    if dims[1]:
        out += (_nan_as_zero(c[2 + owner.has_z]),)

    return out


def _nan_as_zero(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def _coords_equal(a: list[Coord], b: list[Coord], tolerance: float) -> bool:
    return all(_coord_equal(ca, cb, tolerance) for ca, cb in zip(a, b, strict=True))


def _coord_equal(a: Coord, b: Coord, tolerance: float) -> bool:
    for va, vb in zip(a, b, strict=True):
        if va == vb:
            continue

        if abs(va - vb) > tolerance * max(1.0, abs(va), abs(vb)):
            return False

    return True
