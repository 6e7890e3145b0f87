"""ISO WKB: the geometry encoding inside GeoPackage blobs and PostGIS results.

``to_wkb`` writes little-endian ISO WKB (Z adds 1000 to the type code, M 2000,
ZM 3000), which is what GeoPackage requires and PostGIS reads. An empty point is
written with NaN ordinates, the usual convention. ``from_wkb`` also reads
big-endian input and the EWKB / "2.5D" flag bits (0x80000000 Z, 0x40000000 M,
0x20000000 SRID follows) that PostGIS and older GDAL write.
"""

import logging
import math
import struct
from itertools import chain

from qfjobs.geodata.edits_geometry import (
    COORD_TYPES,
    RING_TYPES,
    Coord,
    Geometry,
    GeometryValueError,
    GeomType,
)

logger = logging.getLogger(__name__)

_EWKB_Z = 0x80000000
_EWKB_M = 0x40000000
_EWKB_SRID = 0x20000000
_UINT32 = {1: struct.Struct("<I"), 0: struct.Struct(">I")}
_HEADER_LE = struct.Struct("<BI")


def wkb_type_code(geom: Geometry) -> int:
    return int(geom.type) + 1000 * geom.has_z + 2000 * geom.has_m


def to_wkb(geom: Geometry) -> bytes:
    """Little-endian ISO WKB of ``geom``."""
    chunks: list[bytes] = []
    _write(geom, chunks)
    return b"".join(chunks)


def _write(geom: Geometry, chunks: list[bytes]) -> None:
    chunks.append(_HEADER_LE.pack(1, wkb_type_code(geom)))
    dims = geom.dims
    if geom.type is GeomType.POINT:
        coord = geom.coords[0] if geom.coords else (math.nan,) * dims
        chunks.append(struct.pack(f"<{dims}d", *coord))
        return

    if geom.type in COORD_TYPES:
        chunks.append(pack_coords(geom.coords, dims))
        return

    chunks.append(struct.pack("<I", len(geom.parts)))
    if geom.type in RING_TYPES:
        chunks.extend(pack_coords(ring.coords, dims) for ring in geom.parts)
        return

    for part in geom.parts:
        _write(part, chunks)


def pack_coords(coords: tuple[Coord, ...], dims: int) -> bytes:
    """A little-endian point count followed by the coordinates."""
    flat = chain.from_iterable(coords)
    return struct.pack(f"<I{len(coords) * dims}d", len(coords), *flat)


def from_wkb(data: bytes | memoryview, offset: int = 0) -> Geometry:
    """Parse WKB starting at ``offset``; raise :class:`GeometryValueError`."""
    try:
        geom, _ = _read(memoryview(data), offset)
    except (struct.error, ValueError) as exc:
        raise GeometryValueError(f"invalid WKB: {exc}") from exc

    return geom


def _read(view: memoryview, offset: int) -> tuple[Geometry, int]:
    order = view[offset]
    if order not in (0, 1):
        raise GeometryValueError(f"invalid WKB byte order {order}")

    endian = "<" if order == 1 else ">"
    (code,) = _UINT32[order].unpack_from(view, offset + 1)
    offset += 5
    if code & _EWKB_SRID:
        offset += 4

    geom_type, has_z, has_m = _split_code(code)
    dims = 2 + has_z + has_m
    if geom_type is GeomType.POINT:
        coord = struct.unpack_from(f"{endian}{dims}d", view, offset)
        offset += 8 * dims
        empty = all(math.isnan(v) for v in coord[:2])
        return Geometry(
            geom_type, has_z, has_m, coords=() if empty else (coord,)
        ), offset

    if geom_type in COORD_TYPES:
        coords, offset = unpack_coords(view, offset, endian, dims)
        return Geometry(geom_type, has_z, has_m, coords=coords), offset

    (count,) = struct.unpack_from(f"{endian}I", view, offset)
    offset += 4
    parts: list[Geometry] = []
    for _ in range(count):
        if geom_type in RING_TYPES:
            coords, offset = unpack_coords(view, offset, endian, dims)
            parts.append(Geometry(GeomType.LINESTRING, has_z, has_m, coords=coords))
        else:
            part, offset = _read(view, offset)
            parts.append(part)

    return Geometry(geom_type, has_z, has_m, parts=tuple(parts)), offset


def unpack_coords(
    view: memoryview | bytes, offset: int, endian: str, dims: int
) -> tuple[tuple[Coord, ...], int]:
    """Read a point count and that many coordinates (WKB and SpatiaLite layout)."""
    (count,) = struct.unpack_from(f"{endian}I", view, offset)
    offset += 4
    if count * dims * 8 > len(view) - offset:
        raise GeometryValueError(f"invalid WKB: {count} points do not fit the data")

    flat = struct.unpack_from(f"{endian}{count * dims}d", view, offset)
    coords = tuple(tuple(flat[i : i + dims]) for i in range(0, len(flat), dims))
    return coords, offset + 8 * dims * count


def _split_code(code: int) -> tuple[GeomType, bool, bool]:
    has_z = bool(code & _EWKB_Z)
    has_m = bool(code & _EWKB_M)
    code &= 0x0FFFFFFF
    thousands, base = divmod(code, 1000)
    if thousands not in (0, 1, 2, 3):
        raise GeometryValueError(f"invalid WKB geometry type {code}")

    has_z = has_z or thousands in (1, 3)
    has_m = has_m or thousands in (2, 3)
    try:
        return GeomType(base), has_z, has_m
    except ValueError:
        raise GeometryValueError(f"invalid WKB geometry type {code}") from None
