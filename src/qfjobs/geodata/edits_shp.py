"""Shapefile geometry (``.shp`` and ``.shx``), read and written natively.

Follows the ESRI Shapefile Technical Description (1998): a 100-byte header with
the file's shape type and bounds, then one record per feature. Record contents
of unchanged features are copied as they were; new and changed ones are
encoded here. Line and polygon files hold one or several parts, so their column
type is the multi type, and single-part records read back as single geometries,
like GDAL does. Polygons are written with clockwise outer rings and
counter-clockwise holes (the format's rule); read back, each hole is assigned to
the outer ring that contains it. Z files (types 11, 13, 15, 18) may carry M
values; M files (21, 23, 25, 28) always do. MultiPatch (31) is not supported.
"""

import logging
import struct
from itertools import chain

from qfjobs.geodata.edits_geometry import Coord, Geometry, GeometryColumn, GeomType
from qfjobs.geodata.edits_store import FeatureWriteError

logger = logging.getLogger(__name__)

NULL_SHAPE = 0
POINT, POLYLINE, POLYGON, MULTIPOINT = 1, 3, 5, 8
_FILE_CODE = 9994
_VERSION = 1000
_NO_DATA_M = -1e38
_COLUMN_TYPES = {
    POINT: GeomType.POINT,
    MULTIPOINT: GeomType.MULTIPOINT,
    POLYLINE: GeomType.MULTILINESTRING,
    POLYGON: GeomType.MULTIPOLYGON,
}


def family(shape_type: int) -> tuple[int, bool, bool]:
    """Base type, whether it has Z, whether it must have M."""
    if shape_type in (POINT, POLYLINE, POLYGON, MULTIPOINT):
        return shape_type, False, False

    if shape_type - 10 in _COLUMN_TYPES:
        return shape_type - 10, True, False

    if shape_type - 20 in _COLUMN_TYPES:
        return shape_type - 20, False, True

    raise ValueError(f"unsupported shape type {shape_type}")


def geometry_column(shape_type: int) -> GeometryColumn:
    base, has_z, has_m = family(shape_type)
    return GeometryColumn(
        "geometry",
        _COLUMN_TYPES[base],
        0,
        z=int(has_z),
        m=1 if has_m else 2 if has_z else 0,
    )


def read_shp(data: bytes) -> tuple[int, list[bytes]]:
    """The file's shape type and the content of every record."""
    if len(data) < 100 or struct.unpack_from(">i", data, 0)[0] != _FILE_CODE:
        raise ValueError("not a .shp file")

    shape_type = struct.unpack_from("<i", data, 32)[0]
    end = min(len(data), struct.unpack_from(">i", data, 24)[0] * 2)
    contents: list[bytes] = []
    offset = 100
    while offset + 8 <= end:
        length = struct.unpack_from(">i", data, offset + 4)[0] * 2
        contents.append(data[offset + 8 : offset + 8 + length])
        offset += 8 + length

    return shape_type, contents


def decode_shape(content: bytes) -> Geometry | None:
    if len(content) < 4:
        return None

    shape_type = struct.unpack_from("<i", content, 0)[0]
    if shape_type == NULL_SHAPE:
        return None

    base, has_z, m_type = family(shape_type)
    if base == POINT:
        return _decode_point(content, has_z, m_type)

    if base == MULTIPOINT:
        count = struct.unpack_from("<i", content, 36)[0]
        xy_offset, parts = 40, [0]
    else:
        part_count, count = struct.unpack_from("<2i", content, 36)
        parts = list(struct.unpack_from(f"<{part_count}i", content, 44))
        xy_offset = 44 + 4 * part_count

    coords, z_m = _decode_points(content, xy_offset, count, has_z, m_type)
    if base == MULTIPOINT:
        points = tuple(Geometry(GeomType.POINT, *z_m, coords=(c,)) for c in coords)
        return Geometry(GeomType.MULTIPOINT, *z_m, parts=points)

    sequences = [
        coords[start:end] for start, end in zip(parts, [*parts[1:], count], strict=True)
    ]
    if base == POLYLINE:
        lines = tuple(Geometry(GeomType.LINESTRING, *z_m, coords=s) for s in sequences)
        return (
            lines[0]
            if len(lines) == 1
            else Geometry(GeomType.MULTILINESTRING, *z_m, parts=lines)
        )

    return _assemble_polygons(sequences, z_m)


def _decode_point(content: bytes, has_z: bool, m_type: bool) -> Geometry:
    x, y = struct.unpack_from("<2d", content, 4)
    if has_z:
        z = struct.unpack_from("<d", content, 20)[0]
        if len(content) >= 36 and struct.unpack_from("<d", content, 28)[0] > _NO_DATA_M:
            return Geometry(
                GeomType.POINT, True, True, coords=((x, y, z, content_m(content, 28)),)
            )

        return Geometry(GeomType.POINT, True, False, coords=((x, y, z),))

    if m_type:
        return Geometry(
            GeomType.POINT, False, True, coords=((x, y, content_m(content, 20)),)
        )

    return Geometry(GeomType.POINT, coords=((x, y),))


def content_m(content: bytes, offset: int) -> float:
    value = float(struct.unpack_from("<d", content, offset)[0])
    return value if value > _NO_DATA_M else 0.0


def _decode_points(
    content: bytes, offset: int, count: int, has_z: bool, m_type: bool
) -> tuple[tuple[Coord, ...], tuple[bool, bool]]:
    flat = struct.unpack_from(f"<{2 * count}d", content, offset)
    offset += 16 * count
    zs: tuple[float, ...] | None = None
    if has_z:
        zs = struct.unpack_from(f"<{count}d", content, offset + 16)
        offset += 16 + 8 * count

    ms: tuple[float, ...] | None = None
    if (m_type or has_z) and len(content) >= offset + 16 + 8 * count:
        raw = struct.unpack_from(f"<{count}d", content, offset + 16)
        if m_type or any(m > _NO_DATA_M for m in raw):
            ms = tuple(m if m > _NO_DATA_M else 0.0 for m in raw)

    coords = []
    for i in range(count):
        coord: tuple[float, ...] = (flat[2 * i], flat[2 * i + 1])
        if zs is not None:
            coord += (zs[i],)

        if ms is not None:
            coord += (ms[i],)

        coords.append(coord)

    return tuple(coords), (zs is not None, ms is not None)


def _signed_area(coords: tuple[Coord, ...]) -> float:
    return 0.5 * sum(
        a[0] * b[1] - b[0] * a[1]
        for a, b in zip(coords, coords[1:] + coords[:1], strict=True)
    )


def _inside(point: Coord, ring: tuple[Coord, ...]) -> bool:
    x, y = point[0], point[1]
    inside = False
    for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
        if (a[1] > y) != (b[1] > y):
            cross = a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
            if x < cross:
                inside = not inside

    return inside


def _assemble_polygons(
    rings: list[tuple[Coord, ...]], z_m: tuple[bool, bool]
) -> Geometry:
    outers = [r for r in rings if _signed_area(r) <= 0] or rings
    holes = [r for r in rings if r not in outers]
    polygons: list[list[tuple[Coord, ...]]] = [[outer] for outer in outers]
    for hole in holes:
        owner = next((p for p in polygons if hole and _inside(hole[0], p[0])), None)
        if owner is None:
            polygons.append([hole])
        else:
            owner.append(hole)

    built = tuple(
        Geometry(
            GeomType.POLYGON,
            *z_m,
            parts=tuple(Geometry(GeomType.LINESTRING, *z_m, coords=r) for r in polygon),
        )
        for polygon in polygons
    )
    return (
        built[0]
        if len(built) == 1
        else Geometry(GeomType.MULTIPOLYGON, *z_m, parts=built)
    )


def encode_shape(geometry: Geometry | None, shape_type: int) -> bytes:
    """The record content of ``geometry`` in a file of ``shape_type``."""
    if geometry is None or geometry.is_empty:
        return struct.pack("<i", NULL_SHAPE)

    base, has_z, m_type = family(shape_type)
    sequences = _sequences(geometry, base, shape_type)
    points = list(chain.from_iterable(sequences))
    zs = [c[2] if geometry.has_z else 0.0 for c in points]
    ms = [c[2 + geometry.has_z] if geometry.has_m else 0.0 for c in points]
    write_m = m_type or (has_z and geometry.has_m)
    if base == POINT:
        x, y = points[0][0], points[0][1]
        if has_z:
            return struct.pack("<i4d", shape_type, x, y, zs[0], ms[0])

        if m_type:
            return struct.pack("<i3d", shape_type, x, y, ms[0])

        return struct.pack("<i2d", shape_type, x, y)

    xs, ys = [c[0] for c in points], [c[1] for c in points]
    chunks = [struct.pack("<i4d", shape_type, min(xs), min(ys), max(xs), max(ys))]
    if base == MULTIPOINT:
        chunks.append(struct.pack("<i", len(points)))
    else:
        starts, total = [], 0
        for sequence in sequences:
            starts.append(total)
            total += len(sequence)

        chunks.append(struct.pack(f"<2i{len(starts)}i", len(starts), total, *starts))

    chunks.append(
        struct.pack(
            f"<{2 * len(points)}d", *chain.from_iterable((c[0], c[1]) for c in points)
        )
    )
    if has_z:
        chunks.append(struct.pack(f"<2d{len(zs)}d", min(zs), max(zs), *zs))

    if write_m:
        chunks.append(struct.pack(f"<2d{len(ms)}d", min(ms), max(ms), *ms))

    return b"".join(chunks)


def _sequences(
    geometry: Geometry, base: int, shape_type: int
) -> list[tuple[Coord, ...]]:
    kind = geometry.type
    if base == POINT and kind is GeomType.POINT:
        return [geometry.coords]

    if base == MULTIPOINT and kind in (GeomType.POINT, GeomType.MULTIPOINT):
        parts = [geometry] if kind is GeomType.POINT else list(geometry.parts)
        return [p.coords for p in parts if p.coords]

    if base == POLYLINE and kind in (GeomType.LINESTRING, GeomType.MULTILINESTRING):
        parts = [geometry] if kind is GeomType.LINESTRING else list(geometry.parts)
        return [p.coords for p in parts if p.coords]

    if base == POLYGON and kind in (GeomType.POLYGON, GeomType.MULTIPOLYGON):
        polygons = [geometry] if kind is GeomType.POLYGON else list(geometry.parts)
        return [ring for polygon in polygons for ring in _oriented_rings(polygon)]

    raise FeatureWriteError(
        f"A {kind.name} geometry does not fit a shapefile of shape type {shape_type}"
    )


def _oriented_rings(polygon: Geometry) -> list[tuple[Coord, ...]]:
    rings = []
    for position, ring in enumerate(polygon.parts):
        clockwise = _signed_area(ring.coords) < 0
        wanted_clockwise = position == 0
        rings.append(
            ring.coords if clockwise == wanted_clockwise else ring.coords[::-1]
        )

    return rings


def write_shp(shape_type: int, contents: list[bytes]) -> tuple[bytes, bytes]:
    """The ``.shp`` and ``.shx`` bytes for ``contents`` (records numbered from 1)."""
    records = []
    index = []
    offset_words = 50
    for number, content in enumerate(contents, start=1):
        words = len(content) // 2
        records.append(struct.pack(">2i", number, words) + content)
        index.append(struct.pack(">2i", offset_words, words))
        offset_words += 4 + words

    bounds = _file_bounds(contents)
    shp_header = _header(shape_type, offset_words, bounds)
    shx_header = _header(shape_type, 50 + 4 * len(contents), bounds)
    return shp_header + b"".join(records), shx_header + b"".join(index)


def _header(shape_type: int, length_words: int, bounds: tuple[float, ...]) -> bytes:
    return (
        struct.pack(">7i", _FILE_CODE, 0, 0, 0, 0, 0, length_words)
        + struct.pack("<2i", _VERSION, shape_type)
        + struct.pack("<8d", *bounds)
    )


def _file_bounds(contents: list[bytes]) -> tuple[float, ...]:
    """xmin, ymin, xmax, ymax, zmin, zmax, mmin, mmax over all records."""
    xs: list[float] = []
    ys: list[float] = []
    zs: list[float] = []
    ms: list[float] = []
    for content in contents:
        geometry = decode_shape(content)
        if geometry is None:
            continue

        env = geometry.envelope()
        if env is not None:
            xs += [env.min_x, env.max_x]
            ys += [env.min_y, env.max_y]

        zs += list(geometry.z_range() or ())
        ms += list(geometry.m_range() or ())

    def span(values: list[float]) -> tuple[float, float]:
        return (min(values), max(values)) if values else (0.0, 0.0)

    (xmin, xmax), (ymin, ymax), (zmin, zmax), (mmin, mmax) = map(span, (xs, ys, zs, ms))
    return xmin, ymin, xmax, ymax, zmin, zmax, mmin, mmax
