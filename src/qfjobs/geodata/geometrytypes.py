"""Layer geometry types: names, WKB codes, and what the data shows.

A :class:`GeometryType` is a base type (GeoPackage's upper-case name, such as
``POINT`` or ``CURVEPOLYGON``, ``GEOMETRY`` for "any") plus Z and M flags. It
converts to the names the other parties use: QGIS's WKB type names for the
project (``CurvePolygonZM``), the names pyogrio accepts when it creates a
layer, and the GeoPackage catalog entry.

pyogrio only knows the linear types and drops M when it reports a layer
(``read_info`` turns a ``CURVEPOLYGON ZM`` layer into ``Polygon Z``), and it
cannot create a curve layer. So:

* readers that can ask a catalog (GeoPackage, PostGIS) get the exact type;
* for other sources :func:`refine_reported` recovers the curve base type and
  M from the geometries that were actually written (:class:`WkbTypeTally`).
  An empty layer from such a source therefore keeps the linear, M-less type
  pyogrio reported; that loss is stated in :func:`refine_reported`.
"""

import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]

logger = logging.getLogger(__name__)

#: ISO 13249 base codes and their GeoPackage names.
_BASE_NAMES: dict[int, str] = {
    0: "GEOMETRY",
    1: "POINT",
    2: "LINESTRING",
    3: "POLYGON",
    4: "MULTIPOINT",
    5: "MULTILINESTRING",
    6: "MULTIPOLYGON",
    7: "GEOMETRYCOLLECTION",
    8: "CIRCULARSTRING",
    9: "COMPOUNDCURVE",
    10: "CURVEPOLYGON",
    11: "MULTICURVE",
    12: "MULTISURFACE",
    13: "CURVE",
    14: "SURFACE",
    15: "POLYHEDRALSURFACE",
    16: "TIN",
    17: "TRIANGLE",
}
_BASE_CODES = {name: code for code, name in _BASE_NAMES.items()}

_QGIS_NAMES: dict[str, str] = {
    "GEOMETRY": "Unknown",
    "POINT": "Point",
    "LINESTRING": "LineString",
    "POLYGON": "Polygon",
    "MULTIPOINT": "MultiPoint",
    "MULTILINESTRING": "MultiLineString",
    "MULTIPOLYGON": "MultiPolygon",
    "GEOMETRYCOLLECTION": "GeometryCollection",
    "CIRCULARSTRING": "CircularString",
    "COMPOUNDCURVE": "CompoundCurve",
    "CURVEPOLYGON": "CurvePolygon",
    "MULTICURVE": "MultiCurve",
    "MULTISURFACE": "MultiSurface",
    "CURVE": "CompoundCurve",
    "SURFACE": "CurvePolygon",
    "POLYHEDRALSURFACE": "PolyhedralSurface",
    "TIN": "TIN",
    "TRIANGLE": "Triangle",
}

#: The linear type pyogrio can create in place of each non-linear one.
_LINEAR_OF: dict[str, str] = {
    "CIRCULARSTRING": "LINESTRING",
    "COMPOUNDCURVE": "LINESTRING",
    "CURVE": "LINESTRING",
    "CURVEPOLYGON": "POLYGON",
    "SURFACE": "POLYGON",
    "TRIANGLE": "POLYGON",
    "MULTICURVE": "MULTILINESTRING",
    "MULTISURFACE": "MULTIPOLYGON",
    "POLYHEDRALSURFACE": "MULTIPOLYGON",
    "TIN": "MULTIPOLYGON",
}

#: The curve type that can hold every geometry of a linear type (GDAL's rule).
_CURVE_OF: dict[str, str] = {
    "LINESTRING": "COMPOUNDCURVE",
    "POLYGON": "CURVEPOLYGON",
    "MULTILINESTRING": "MULTICURVE",
    "MULTIPOLYGON": "MULTISURFACE",
}

#: GeoPackage geometry types that need a ``gpkg_geom_<NAME>`` extension row.
NON_LINEAR_BASES = frozenset(_LINEAR_OF)

_PYOGRIO_LINEAR = {
    "POINT": "Point",
    "LINESTRING": "LineString",
    "POLYGON": "Polygon",
    "MULTIPOINT": "MultiPoint",
    "MULTILINESTRING": "MultiLineString",
    "MULTIPOLYGON": "MultiPolygon",
    "GEOMETRYCOLLECTION": "GeometryCollection",
}

# EWKB and old-style OGC flags; ISO codes use thousands instead.
_EWKB_Z = 0x80000000
_EWKB_M = 0x40000000
_EWKB_SRID = 0x20000000


@dataclass(frozen=True)
class GeometryType:
    """A layer geometry type: GeoPackage base name plus Z and M flags."""

    base: str
    z: bool = False
    m: bool = False

    def __post_init__(self) -> None:
        if self.base not in _BASE_CODES:
            raise ValueError(f"unknown geometry base type {self.base!r}")

    @property
    def qgis_name(self) -> str:
        """QGIS's WKB type name, e.g. ``CurvePolygonZM``; ``Unknown`` for any."""
        name = _QGIS_NAMES[self.base]
        if self.base == "GEOMETRY":
            return name
        return name + ("Z" if self.z else "") + ("M" if self.m else "")

    @property
    def is_linear(self) -> bool:
        return self.base not in NON_LINEAR_BASES

    @property
    def pyogrio_name(self) -> str:
        """The name pyogrio creates the layer with.

        pyogrio has neither non-linear types nor Z/M variants of ``Unknown``,
        so those are created as ``Unknown`` (GDAL then accepts any geometry
        without warnings) and the catalog is set right afterwards.
        """
        if self.base not in _PYOGRIO_LINEAR:
            return "Unknown"
        name = _PYOGRIO_LINEAR[self.base]
        base = self.base
        if self.z and self.m:
            return f"Measured 3D {name}"
        if self.m:
            return "PointM" if base == "POINT" else f"Measured {name}"
        if self.z:
            return f"{name} Z"
        return name

    @property
    def linear_base(self) -> str:
        return _LINEAR_OF.get(self.base, self.base)


def from_iso_code(code: int) -> GeometryType:
    """The type of an ISO or EWKB geometry type code (as found in WKB)."""
    z = bool(code & _EWKB_Z)
    m = bool(code & _EWKB_M)
    code &= ~(_EWKB_Z | _EWKB_M | _EWKB_SRID) & 0xFFFFFFFF
    thousands, base_code = divmod(code, 1000)
    if thousands > 3 or base_code not in _BASE_NAMES:
        raise ValueError(f"unknown WKB geometry type code {code}")

    z = z or thousands in (1, 3)
    m = m or thousands in (2, 3)
    return GeometryType(_BASE_NAMES[base_code], z, m)


def from_gpkg_catalog(type_name: str, z: int, m: int) -> GeometryType:
    """The type registered in ``gpkg_geometry_columns`` (z/m: 0, 1 or 2)."""
    return GeometryType(type_name.upper(), z in (1, 2), m in (1, 2))


def from_postgis(type_name: str, coord_dimension: int) -> GeometryType:
    """The type of a PostGIS ``geometry_columns`` row (``POINTM``, 3 = XYM)."""
    name = type_name.upper()
    m = name.endswith("M") and name[:-1] in _BASE_CODES
    base = name[:-1] if m else name
    z = coord_dimension == 4 or (coord_dimension == 3 and not m)
    return GeometryType(base, z, m or coord_dimension == 4)


def from_pyogrio(name: str | None) -> GeometryType | None:
    """The type pyogrio reports (``Point Z``, ``Unknown``; None = no geometry)."""
    if name is None:
        return None

    z = name.endswith(" Z") or name.startswith(("2.5D ", "Measured 3D "))
    m = name.startswith("Measured ") or name == "PointM"
    bare = name.removesuffix(" Z").removeprefix("2.5D ")
    bare = bare.removeprefix("Measured 3D ").removeprefix("Measured ")
    bare = "Point" if bare == "PointM" else bare
    base = "GEOMETRY" if bare == "Unknown" else bare.upper()
    if base not in _BASE_CODES:
        raise ValueError(f"unknown pyogrio geometry type {name!r}")
    return GeometryType(base, z, m)


class WkbTypeTally:
    """Collects the distinct WKB geometry type codes of the features written.

    It reads only the five header bytes of each WKB value, with numpy over the
    Arrow buffers, so it adds little to a batch's cost.
    """

    def __init__(self) -> None:
        self.codes: set[int] = set()

    def observe(self, array: pa.Array) -> None:
        if len(array) == 0 or array.null_count == len(array):
            return

        offsets, data = _binary_buffers(array)
        starts = offsets[:-1]
        keep = (offsets[1:] - starts) >= 5
        if array.null_count:
            keep &= array.is_valid().to_numpy(zero_copy_only=False)
        starts = starts[keep]
        if starts.size == 0:
            return

        header = np.stack([data[starts + i].astype(np.uint32) for i in range(5)])
        little = header[1] | header[2] << 8 | header[3] << 16 | header[4] << 24
        big = header[4] | header[3] << 8 | header[2] << 16 | header[1] << 24
        codes = np.where(header[0] == 1, little, big)
        self.codes.update(int(code) for code in np.unique(codes))

    def types(self) -> set[GeometryType]:
        """The observed types; codes that are not geometry types are left out."""
        found = set()
        for code in self.codes:
            try:
                found.add(from_iso_code(code))
            except ValueError:
                logger.debug("ignoring WKB type code %s", code)
        return found


def _binary_buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (sliced to the array) and the data bytes of a binary array."""
    offset_type = np.int64 if pa.types.is_large_binary(array.type) else np.int32
    _, offsets_buffer, data_buffer = array.buffers()[:3]
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)
    offsets = offsets[array.offset : array.offset + len(array) + 1]
    if data_buffer is None:
        return offsets, np.zeros(0, dtype=np.uint8)
    return offsets, np.frombuffer(data_buffer, dtype=np.uint8)


def refine_reported(
    reported: GeometryType, observed: set[GeometryType]
) -> GeometryType:
    """The layer type behind pyogrio's lossy report, judged from the data.

    pyogrio reports non-linear layers as their linear counterpart and drops M.
    If the written geometries include curves of that family, the layer is
    taken to be the curve type (the single curve type seen, else GDAL's curve
    supertype: ``COMPOUNDCURVE``, ``CURVEPOLYGON``, ``MULTICURVE``,
    ``MULTISURFACE``); if any carries M, the layer gets M. A ``GEOMETRY``
    layer stays ``GEOMETRY``. With no geometries there is nothing to judge
    by, so the reported type is kept (a known loss for empty M or curve
    layers from formats other than GeoPackage and PostGIS).
    """
    if reported.base == "GEOMETRY" or not observed:
        return reported

    family = {kind for kind in observed if kind.linear_base == reported.base}
    curves = {kind.base for kind in family if not kind.is_linear}
    base = reported.base
    if len(curves) == 1 and all(not kind.is_linear for kind in family):
        base = curves.pop()
    elif curves:
        base = _CURVE_OF.get(reported.base, reported.base)

    m = reported.m or any(kind.m for kind in observed)
    return GeometryType(base, reported.z, m)
