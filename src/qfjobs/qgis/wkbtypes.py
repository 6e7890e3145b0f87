"""QGIS WKB geometry types: names, integer codes, and conversions.

QGIS names (``Qgis::WkbType``) are ``Point``, ``PointZ``, ``MultiPolygonZM``,
``Point25D``, ``NoGeometry``, ``Unknown``... Their integers follow ISO WKB:
base + 1000 for Z, + 2000 for M, + 3000 for ZM, and ``0x80000000 + base``
for the old 2.5D types. This module converts from the names found in project
XML, from GeoPackage metadata, and from GDAL/pyogrio geometry type names.
"""

import re

BASE_TYPES: dict[str, int] = {
    "Unknown": 0,
    "Point": 1,
    "LineString": 2,
    "Polygon": 3,
    "MultiPoint": 4,
    "MultiLineString": 5,
    "MultiPolygon": 6,
    "GeometryCollection": 7,
    "CircularString": 8,
    "CompoundCurve": 9,
    "CurvePolygon": 10,
    "MultiCurve": 11,
    "MultiSurface": 12,
    "PolyhedralSurface": 15,
    "TIN": 16,
    "Triangle": 17,
    "NoGeometry": 100,
}
WKB_25D = 0x80000000
_SUFFIX_OFFSETS = {"": 0, "Z": 1000, "M": 2000, "ZM": 3000}
_CANONICAL = {name.lower(): name for name in BASE_TYPES}
_CANONICAL.update({"line": "LineString", "geometry": "Unknown", "none": "NoGeometry"})

_QGIS_NAME = re.compile(r"^([A-Za-z]+?)(ZM|Z|M|25D)?$", re.I)


def wkb_type_code(name: str | None) -> int | None:
    """Integer code of a QGIS WKB type name; None when unknown."""
    if not name:
        return None

    match = _QGIS_NAME.match(name.replace(" ", ""))
    if match is None:
        return None

    base = _CANONICAL.get(match.group(1).lower())
    if base is None:
        return None

    suffix = (match.group(2) or "").upper()
    if base in ("NoGeometry", "Unknown"):
        return BASE_TYPES[base] if not suffix else None
    if suffix == "25D":
        return WKB_25D + BASE_TYPES[base] if BASE_TYPES[base] <= 6 else None
    return BASE_TYPES[base] + _SUFFIX_OFFSETS[suffix]


def normalise_name(name: str | None) -> str | None:
    """Canonical QGIS spelling: ``multipolygonz`` gives ``MultiPolygonZ``."""
    if not name:
        return None

    match = _QGIS_NAME.match(name.replace(" ", ""))
    if match is None:
        return None

    base = _CANONICAL.get(match.group(1).lower())
    suffix = (match.group(2) or "").upper()
    if base is None or wkb_type_code(base + suffix) is None:
        return None
    return base + suffix


def from_legacy_geometry(name: str | None) -> str | None:
    """Type from QGIS 2 / early 3 ``maplayer/@geometry`` (``Line``, ``No geometry``)."""
    if not name:
        return None

    key = name.strip().lower()
    legacy = {
        "point": "Point",
        "line": "LineString",
        "polygon": "Polygon",
        "no geometry": "NoGeometry",
        "unknown geometry": "Unknown",
    }
    return legacy.get(key)


def from_gdal_name(name: str | None) -> str:
    """Convert a GDAL or pyogrio name (``3D Measured Point``, ``Point Z``)."""
    if name is None:
        return "NoGeometry"

    has_z = has_m = False
    base_words: list[str] = []
    for word in name.replace("(any)", "").split():
        flag = word.upper()
        if flag in ("3D", "Z", "ZM"):
            has_z = True
        if flag in ("MEASURED", "M", "ZM"):
            has_m = True
        if flag not in ("3D", "Z", "ZM", "MEASURED", "M"):
            base_words.append(word)

    base = _CANONICAL.get("".join(base_words).lower(), "Unknown")
    if base in ("Unknown", "NoGeometry"):
        return base
    return base + ("Z" if has_z else "") + ("M" if has_m else "")


def from_gpkg(geometry_type_name: str, z: int, m: int) -> str:
    """Type from ``gpkg_geometry_columns`` (``CURVEPOLYGON``, z flag, m flag)."""
    base = _CANONICAL.get(geometry_type_name.strip().lower(), "Unknown")
    if base == "Unknown":
        return base
    return base + ("Z" if z else "") + ("M" if m else "")


def promote_to_multi(name: str) -> str:
    """``LineString*``/``Polygon*`` → ``MultiLineString*``/``MultiPolygon*``.

    QGIS reports shapefile lines and polygons as multi types, because a
    shapefile record may hold several parts.
    """
    for single in ("LineString", "Polygon"):
        if name.startswith(single):
            return "Multi" + name
    return name


def is_geometryless(name: str | None) -> bool:
    return name == "NoGeometry"
