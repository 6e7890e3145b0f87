"""Geometry blobs of GeoPackage and SpatiaLite tables, written without GDAL.

GeoPackage (spec 1.2+, section 2.1.3): ``GP``, version 0, a flags byte, the
srs_id, an optional envelope, then ISO WKB. Like GDAL, points get no envelope and
other geometries an XY envelope; an empty geometry has the empty flag and no
envelope. Extended (``X`` flag) geometries are refused.

SpatiaLite (its "BLOB-Geometry" format): 0x00, byte order, srid, the MBR, 0x7C,
the class type, the body with 0x69 before every inner entity, 0xFE. Compressed
and TinyPoint blobs are refused with a clear message; curves do not exist there.
An empty geometry cannot be written to SpatiaLite: it is stored as NULL.
"""

import logging
import struct
from functools import lru_cache

from qfjobs.geodata.edits_geometry import (
    COORD_TYPES,
    CURVED_TYPES,
    RING_TYPES,
    Envelope,
    Geometry,
    GeometryValueError,
    GeomType,
)
from qfjobs.geodata.edits_wkb import (
    from_wkb,
    pack_coords,
    to_wkb,
    unpack_coords,
    wkb_type_code,
)

logger = logging.getLogger(__name__)

GPKG_MAGIC = b"GP"
_GPKG_EMPTY = 0x10
_GPKG_EXTENDED = 0x20
_ENVELOPE_DOUBLES = {0: 0, 1: 4, 2: 6, 3: 6, 4: 8}
_GPKG_HEADER_LE = struct.Struct("<2sBBi")
_GPKG_ENVELOPE_XY = struct.Struct("<4d")

_SPL_START = 0x00
_SPL_MBR_END = 0x7C
_SPL_ENTITY = 0x69
_SPL_END = 0xFE
_SPL_HEADER_LE = struct.Struct("<BBi4dBi")


def encode_gpkg(geom: Geometry, srs_id: int) -> bytes:
    """The GeoPackage blob of ``geom`` in ``srs_id``."""
    if geom.is_empty:
        return _GPKG_HEADER_LE.pack(GPKG_MAGIC, 0, 0x01 | _GPKG_EMPTY, srs_id) + to_wkb(
            geom
        )

    if geom.type is GeomType.POINT:
        return _GPKG_HEADER_LE.pack(GPKG_MAGIC, 0, 0x01, srs_id) + to_wkb(geom)

    env = geom.envelope()
    assert env is not None
    header = _GPKG_HEADER_LE.pack(GPKG_MAGIC, 0, 0x01 | (1 << 1), srs_id)
    envelope = _GPKG_ENVELOPE_XY.pack(env.min_x, env.max_x, env.min_y, env.max_y)
    return header + envelope + to_wkb(geom)


def _gpkg_layout(blob: bytes) -> tuple[int, str, int, int]:
    """Flags, byte order, srs_id and the WKB offset of a GeoPackage blob."""
    if len(blob) < 8 or blob[:2] != GPKG_MAGIC:
        raise GeometryValueError("not a GeoPackage geometry blob")

    flags = blob[3]
    if flags & _GPKG_EXTENDED:
        raise GeometryValueError("extended GeoPackage geometries are not supported")

    endian = "<" if flags & 0x01 else ">"
    envelope_code = (flags >> 1) & 0x07
    if envelope_code not in _ENVELOPE_DOUBLES:
        raise GeometryValueError(f"invalid GeoPackage envelope code {envelope_code}")

    (srs_id,) = struct.unpack_from(f"{endian}i", blob, 4)
    return flags, endian, srs_id, 8 + 8 * _ENVELOPE_DOUBLES[envelope_code]


def decode_gpkg(blob: bytes) -> Geometry:
    _, _, _, offset = _gpkg_layout(blob)
    return from_wkb(blob, offset)


def gpkg_srs_id(blob: bytes) -> int:
    return _gpkg_layout(blob)[2]


def gpkg_is_empty(blob: bytes) -> bool:
    flags = _gpkg_layout(blob)[0]
    if flags & _GPKG_EMPTY:
        return True

    return gpkg_envelope(blob) is None


@lru_cache(maxsize=16)
def gpkg_envelope(blob: bytes) -> Envelope | None:
    """XY envelope from the header, or computed from the WKB when it has none.

    Cached because the rtree triggers ask for it five times per written row.
    """
    flags, endian, _, offset = _gpkg_layout(blob)
    if flags & _GPKG_EMPTY:
        return None

    if offset > 8:
        min_x, max_x, min_y, max_y = struct.unpack_from(f"{endian}4d", blob, 8)
        return Envelope(min_x, max_x, min_y, max_y)

    return from_wkb(blob, offset).envelope()


def encode_spatialite(geom: Geometry, srid: int) -> bytes | None:
    """The SpatiaLite blob of ``geom``; ``None`` (NULL) for an empty geometry."""
    if geom.is_empty:
        return None

    if geom.type in CURVED_TYPES or geom.type.value > GeomType.GEOMETRYCOLLECTION:
        raise GeometryValueError(f"SpatiaLite cannot store a {geom.type.name} geometry")

    env = geom.envelope()
    assert env is not None
    header = _SPL_HEADER_LE.pack(
        _SPL_START,
        0x01,
        srid,
        env.min_x,
        env.min_y,
        env.max_x,
        env.max_y,
        _SPL_MBR_END,
        wkb_type_code(geom),
    )
    chunks = [header]
    _spatialite_body(geom, chunks)
    chunks.append(bytes([_SPL_END]))
    return b"".join(chunks)


def _spatialite_body(geom: Geometry, chunks: list[bytes]) -> None:
    dims = geom.dims
    if geom.type is GeomType.POINT:
        chunks.append(struct.pack(f"<{dims}d", *geom.coords[0]))
        return

    if geom.type in COORD_TYPES:
        chunks.append(pack_coords(geom.coords, dims))
        return

    chunks.append(struct.pack("<i", len(geom.parts)))
    if geom.type in RING_TYPES:
        chunks.extend(pack_coords(ring.coords, dims) for ring in geom.parts)
        return

    for part in geom.parts:
        chunks.append(struct.pack("<Bi", _SPL_ENTITY, wkb_type_code(part)))
        _spatialite_body(part, chunks)


def _spatialite_layout(blob: bytes) -> tuple[str, int]:
    if len(blob) < 44 or blob[0] != _SPL_START or blob[38] != _SPL_MBR_END:
        if len(blob) > 1 and blob[0] == _SPL_START and blob[1] in (0x80, 0x81):
            raise GeometryValueError("SpatiaLite TinyPoint blobs are not supported")

        raise GeometryValueError("not a SpatiaLite geometry blob")

    if blob[1] not in (0, 1):
        raise GeometryValueError("invalid SpatiaLite byte order")

    endian = "<" if blob[1] == 1 else ">"
    (srid,) = struct.unpack_from(f"{endian}i", blob, 2)
    return endian, srid


def decode_spatialite(blob: bytes) -> Geometry:
    endian, _ = _spatialite_layout(blob)
    try:
        geom, _ = _read_spatialite(blob, 39, endian)
    except struct.error as exc:
        raise GeometryValueError(f"invalid SpatiaLite blob: {exc}") from exc

    return geom


def spatialite_srid(blob: bytes) -> int:
    return _spatialite_layout(blob)[1]


def spatialite_envelope(blob: bytes) -> Envelope:
    endian, _ = _spatialite_layout(blob)
    min_x, min_y, max_x, max_y = struct.unpack_from(f"{endian}4d", blob, 6)
    return Envelope(min_x, max_x, min_y, max_y)


def spatialite_class(blob: bytes) -> int:
    endian, _ = _spatialite_layout(blob)
    (code,) = struct.unpack_from(f"{endian}i", blob, 39)
    return int(code)


def _read_spatialite(blob: bytes, offset: int, endian: str) -> tuple[Geometry, int]:
    (code,) = struct.unpack_from(f"{endian}i", blob, offset)
    offset += 4
    if code >= 1_000_000:
        raise GeometryValueError("compressed SpatiaLite geometries are not supported")

    thousands, base = divmod(code, 1000)
    has_z, has_m = thousands in (1, 3), thousands in (2, 3)
    try:
        geom_type = GeomType(base)
    except ValueError:
        raise GeometryValueError(f"invalid SpatiaLite class type {code}") from None

    dims = 2 + has_z + has_m
    if geom_type is GeomType.POINT:
        coord = struct.unpack_from(f"{endian}{dims}d", blob, offset)
        return Geometry(geom_type, has_z, has_m, coords=(coord,)), offset + 8 * dims

    if geom_type in COORD_TYPES:
        coords, offset = unpack_coords(blob, offset, endian, dims)
        return Geometry(geom_type, has_z, has_m, coords=coords), offset

    (count,) = struct.unpack_from(f"{endian}i", blob, offset)
    offset += 4
    parts: list[Geometry] = []
    for _ in range(count):
        if geom_type in RING_TYPES:
            coords, offset = unpack_coords(blob, offset, endian, dims)
            parts.append(Geometry(GeomType.LINESTRING, has_z, has_m, coords=coords))
            continue

        if blob[offset] != _SPL_ENTITY:
            raise GeometryValueError("invalid SpatiaLite blob: entity marker missing")

        part, offset = _read_spatialite(blob, offset + 1, endian)
        parts.append(part)

    return Geometry(geom_type, has_z, has_m, parts=tuple(parts)), offset
