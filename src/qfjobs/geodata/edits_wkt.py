"""Reading and writing WKT as QField and QGIS write it.

The reader is lenient where QGIS is lenient, because QField's WKT comes from QGIS:

* the dimension tag may be glued to the type (``POINTZ``, ``LineStringZM``);
* a tagged coordinate with too few ordinates gets the missing Z/M as 0
  (``POINTZ (666 0)`` is ``POINT Z (666 0 0)``), an untagged geometry takes its
  dimensions from its first coordinate;
* an EWKT ``SRID=...;`` prefix is accepted and ignored (there is no reprojection);
* ``nan`` Z or M ordinates become 0, like the reference worker does (QField writes
  ``nan`` when the device knows no altitude; 0 keeps the value readable by every
  format, while NaN would read as "empty" in some). A ``nan`` or infinite X or Y
  is refused: the reference turned it into 0, which silently moved the feature
  to the origin.

Curves (circular strings, compound curves, curve polygons, multi curves and
surfaces), triangles, TINs and polyhedral surfaces are read as well.
"""

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from qfjobs.geodata.edits_geometry import (
    COORD_TYPES,
    Coord,
    Geometry,
    GeometryValueError,
    GeomType,
    check_finite_xy,
    with_dimensions,
)

logger = logging.getLogger(__name__)

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>[-+]?(?:nan|inf(?:inity)?|(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?))
      | (?P<word>[a-z_]+)
      | (?P<punct>[(),;=])
    )""",
    re.VERBOSE | re.IGNORECASE,
)
_DIMENSION_TAGS = {"Z": (True, False), "M": (False, True), "ZM": (True, True)}
_TYPE_NAMES = {t.name: t for t in GeomType}
#: Parts that may be written as a bare parenthesised list inside a container.
_BARE_PART = {
    GeomType.MULTIPOINT: GeomType.POINT,
    GeomType.MULTILINESTRING: GeomType.LINESTRING,
    GeomType.MULTIPOLYGON: GeomType.POLYGON,
    GeomType.COMPOUNDCURVE: GeomType.LINESTRING,
    GeomType.CURVEPOLYGON: GeomType.LINESTRING,
    GeomType.MULTICURVE: GeomType.LINESTRING,
    GeomType.MULTISURFACE: GeomType.POLYGON,
    GeomType.POLYHEDRALSURFACE: GeomType.POLYGON,
    GeomType.TIN: GeomType.TRIANGLE,
}


@dataclass(slots=True)
class _Dims:
    """Dimensions of the geometry being read; fixed by a tag or a coordinate."""

    has_z: bool = False
    has_m: bool = False
    known: bool = False

    def fix(self, has_z: bool, has_m: bool) -> None:
        self.has_z, self.has_m, self.known = has_z, has_m, True


def parse_wkt(text: str) -> Geometry:
    """Parse ``text``; raise :class:`GeometryValueError` saying what is wrong."""
    reader = _Reader(_tokenize(text))
    reader.skip_srid()
    geom = reader.geometry(_Dims())
    reader.expect_end()
    check_finite_xy(geom)
    return geom


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        match = _TOKEN.match(stripped, pos)
        if match is None:
            raise GeometryValueError(
                f"invalid WKT: unexpected {stripped[pos : pos + 10]!r} at offset {pos}"
            )

        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()

    return tokens


class _Reader:
    """Recursive-descent reader over the token list."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.pos += 1
        return token

    def fail(self, expected: str) -> GeometryValueError:
        kind, value = self.peek()
        found = "the end" if kind == "end" else repr(value)
        return GeometryValueError(f"invalid WKT: expected {expected}, found {found}")

    def expect(self, punct: str) -> None:
        if self.peek() != ("punct", punct):
            raise self.fail(repr(punct))

        self.pos += 1

    def accept(self, punct: str) -> bool:
        if self.peek() == ("punct", punct):
            self.pos += 1
            return True

        return False

    def accept_word(self, word: str) -> bool:
        kind, value = self.peek()
        if kind == "word" and value.upper() == word:
            self.pos += 1
            return True

        return False

    def skip_srid(self) -> None:
        if self.peek()[0] == "word" and self.peek()[1].upper() == "SRID":
            self.pos += 1
            self.expect("=")
            if self.take()[0] != "num":
                raise self.fail("an SRID number")

            self.expect(";")

    def expect_end(self) -> None:
        if self.peek()[0] != "end":
            raise self.fail("the end of the WKT")

    def geometry(self, dims: _Dims) -> Geometry:
        kind, word = self.take()
        if kind != "word":
            self.pos -= 1
            raise self.fail("a geometry type")

        geom_type, tag = _split_type(word)
        if tag is None and self.peek()[0] == "word":
            tag = _DIMENSION_TAGS.get(self.peek()[1].upper())
            if tag is not None:
                self.pos += 1

        if tag is not None:
            dims.fix(*tag)

        return self.body(geom_type, dims)

    def body(self, geom_type: GeomType, dims: _Dims) -> Geometry:
        if self.accept_word("EMPTY"):
            return Geometry(geom_type, dims.has_z, dims.has_m)

        if geom_type in COORD_TYPES:
            coords = self.coord_list(dims, single=geom_type is GeomType.POINT)
            return Geometry(geom_type, dims.has_z, dims.has_m, coords=coords)

        if geom_type in (GeomType.POLYGON, GeomType.TRIANGLE):
            rings = self.list_of(lambda: self.ring(dims))
            return Geometry(geom_type, dims.has_z, dims.has_m, parts=tuple(rings))

        if geom_type is GeomType.GEOMETRYCOLLECTION:
            return self.collection(dims)

        if geom_type not in _BARE_PART:
            raise GeometryValueError(f"invalid WKT: {geom_type.name} cannot be read")

        parts = self.list_of(lambda: self.part(_BARE_PART[geom_type], dims))
        geom = Geometry(geom_type, dims.has_z, dims.has_m, parts=tuple(parts))
        return with_dimensions(geom, dims.has_z, dims.has_m)

    def collection(self, dims: _Dims) -> Geometry:
        members = self.list_of(
            lambda: self.geometry(_Dims(dims.has_z, dims.has_m, dims.known))
        )
        has_z = dims.has_z if dims.known else any(g.has_z for g in members)
        has_m = dims.has_m if dims.known else any(g.has_m for g in members)
        parts = tuple(with_dimensions(g, has_z, has_m) for g in members)
        return Geometry(GeomType.GEOMETRYCOLLECTION, has_z, has_m, parts=parts)

    def part(self, bare_type: GeomType, dims: _Dims) -> Geometry:
        kind, _ = self.peek()
        if kind == "word" and not self.accept_word("EMPTY"):
            return self.geometry(dims)

        if kind == "word":
            return Geometry(bare_type, dims.has_z, dims.has_m)

        if bare_type is GeomType.POINT and kind == "num":
            # MULTIPOINT (1 2, 3 4): points without their own parentheses
            return Geometry(
                bare_type, dims.has_z, dims.has_m, coords=(self.coord(dims),)
            )

        return self.body(bare_type, dims)

    def ring(self, dims: _Dims) -> Geometry:
        coords = self.coord_list(dims, single=False)
        return Geometry(GeomType.LINESTRING, dims.has_z, dims.has_m, coords=coords)

    def list_of(self, item: Callable[[], Geometry]) -> list[Geometry]:
        self.expect("(")
        items = [item()]
        while self.accept(","):
            items.append(item())

        self.expect(")")
        return items

    def coord_list(self, dims: _Dims, single: bool) -> tuple[Coord, ...]:
        self.expect("(")
        coords = [self.coord(dims)]
        while not single and self.accept(","):
            coords.append(self.coord(dims))

        self.expect(")")
        return tuple(coords)

    def coord(self, dims: _Dims) -> Coord:
        values: list[float] = []
        while self.peek()[0] == "num":
            values.append(float(self.take()[1]))

        if len(values) < 2:
            raise self.fail("a coordinate with at least X and Y")

        if not dims.known:
            if len(values) > 4:
                raise GeometryValueError(
                    f"invalid WKT: {len(values)} ordinates in a coordinate"
                )

            dims.fix(len(values) >= 3, len(values) == 4)

        wanted = 2 + dims.has_z + dims.has_m
        if len(values) > wanted:
            raise GeometryValueError(
                f"invalid WKT: {len(values)} ordinates where {wanted} are expected"
            )

        values.extend([0.0] * (wanted - len(values)))
        return tuple([values[0], values[1], *(_zero_if_nan(v) for v in values[2:])])


def _zero_if_nan(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def _split_type(word: str) -> tuple[GeomType, tuple[bool, bool] | None]:
    upper = word.upper()
    if upper in _TYPE_NAMES:
        return _TYPE_NAMES[upper], None

    for suffix in ("ZM", "Z", "M"):
        base = upper.removesuffix(suffix)
        if base != upper and base in _TYPE_NAMES:
            return _TYPE_NAMES[base], _DIMENSION_TAGS[suffix]

    raise GeometryValueError(f"invalid WKT: unknown geometry type {word!r}")


def to_wkt(geom: Geometry) -> str:
    """ISO WKT of ``geom`` (``POINT Z (1 2 3)``), integers without ``.0``."""
    tag = {(True, False): " Z", (False, True): " M", (True, True): " ZM"}.get(
        (geom.has_z, geom.has_m), ""
    )
    return f"{geom.type.name}{tag} {_body(geom)}"


def _body(geom: Geometry) -> str:
    if geom.is_empty and geom.type is not GeomType.GEOMETRYCOLLECTION:
        return "EMPTY"

    if geom.type in COORD_TYPES:
        return _coords_text(geom.coords)

    if geom.type in (GeomType.POLYGON, GeomType.TRIANGLE):
        return "(" + ", ".join(_coords_text(r.coords) for r in geom.parts) + ")"

    if not geom.parts:
        return "EMPTY"

    bare = _BARE_PART.get(geom.type)
    texts = [_body(p) if p.type is bare else to_wkt(p) for p in geom.parts]
    if geom.type is GeomType.MULTIPOINT:
        texts = [_body(p) for p in geom.parts]

    return "(" + ", ".join(texts) + ")"


def _coords_text(coords: tuple[Coord, ...]) -> str:
    return "(" + ", ".join(" ".join(_number(v) for v in c) for c in coords) + ")"


def _number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))

    return repr(value)
