"""GeoJSON layers, rewritten on commit in the layout GDAL writes.

A FeatureCollection is read with the standard JSON parser and written back with
one feature per line and GDAL's spacing (``{ "type": "Feature", ... }``), so a
file GDAL wrote comes back identical except for the edited features. Members
the handler does not know (``name``, ``crs``, foreign members) are kept; a
top-level ``bbox`` is recomputed. Fields are the union of the features'
properties; their kinds are inferred from the values. New features get the next
integer ``id`` when the collection uses ids, and every field (null when not
given), like GDAL. GeoJSON has no M values (they are dropped with a note) and no
curves (refused).
"""

import json
import logging
from pathlib import Path
from typing import Any

from qfjobs.geodata.edits_geometry import (
    COORD_TYPES,
    CURVED_TYPES,
    RING_TYPES,
    Geometry,
    GeometryColumn,
    GeometryValueError,
    GeomType,
)
from qfjobs.geodata.edits_memory import MemoryLayer, MemoryRow, RewriteStore
from qfjobs.geodata.edits_store import (
    FeatureWriteError,
    LayerSchema,
    StoreOpenError,
    match_pk,
)
from qfjobs.geodata.edits_swap import replace_file
from qfjobs.geodata.edits_target import FileLayer
from qfjobs.geodata.edits_values import FieldInfo, FieldKind

logger = logging.getLogger(__name__)

_GEOJSON_TYPES = {
    "Point": GeomType.POINT,
    "LineString": GeomType.LINESTRING,
    "Polygon": GeomType.POLYGON,
    "MultiPoint": GeomType.MULTIPOINT,
    "MultiLineString": GeomType.MULTILINESTRING,
    "MultiPolygon": GeomType.MULTIPOLYGON,
    "GeometryCollection": GeomType.GEOMETRYCOLLECTION,
}
_TYPE_NAMES = {value: key for key, value in _GEOJSON_TYPES.items()}


class GeoJsonStore(RewriteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.document: dict[str, Any] = {}
        self.uses_ids = False

    def load(self, target: FileLayer) -> MemoryLayer:
        document = self._read()
        features = document["features"]
        fields = _infer_fields(features)
        pk = match_pk(fields, target.pk_column, self.path.name)
        geometry = GeometryColumn("geometry", GeomType.GEOMETRY, 4326, z=2, m=0)
        schema = LayerSchema(
            fields=fields, pk=pk, geometry=geometry if target.is_spatial else None
        )
        rows = [_row(feature, fields) for feature in features]
        self.document = document
        self.uses_ids = any(isinstance(f.get("id"), int) for f in features)
        return MemoryLayer(schema, rows, check_row=_check_row)

    def _read(self) -> dict[str, Any]:
        try:
            document = json.loads(self.path.read_bytes())
        except (ValueError, UnicodeDecodeError) as exc:
            raise StoreOpenError(f"{self.path} is not valid JSON: {exc}") from exc

        if (
            not isinstance(document, dict)
            or document.get("type") != "FeatureCollection"
            or not isinstance(document.get("features"), list)
        ):
            raise StoreOpenError(f"{self.path} is not a GeoJSON FeatureCollection")

        return document

    def save(self, layer: MemoryLayer) -> None:
        next_id = 1 + max(
            (
                f["id"]
                for f in self.document["features"]
                if isinstance(f.get("id"), int)
            ),
            default=0,
        )
        features = []
        for row in layer.live_rows():
            if not row.changed:
                features.append(row.source)
                continue

            feature = self._feature(row, layer.schema, next_id)
            if row.source is None and self.uses_ids:
                next_id += 1

            features.append(feature)

        document = dict(self.document)
        document["features"] = features
        if "bbox" in document:
            document["bbox"] = _collection_bbox(layer)

        replace_file(self.path, dump_collection(document).encode("utf-8"))

    def _feature(
        self, row: MemoryRow, schema: LayerSchema, next_id: int
    ) -> dict[str, Any]:
        if row.source is None:
            feature: dict[str, Any] = {"type": "Feature"}
            if self.uses_ids:
                feature["id"] = next_id

            properties = {
                name: _json_value(row.attributes.get(name)) for name in schema.fields
            }
        else:
            feature = dict(row.source)
            properties = dict(feature.get("properties") or {})
            for name, value in row.attributes.items():
                if name in properties or value is not None:
                    properties[name] = _json_value(value)

        feature["properties"] = properties
        feature["geometry"] = (
            None if row.geometry is None else geometry_to_geojson(row.geometry)
        )
        if "bbox" in feature:
            feature["bbox"] = _bbox(row.geometry)

        return feature


def _infer_fields(features: list[Any]) -> dict[str, FieldInfo]:
    seen: dict[str, set[FieldKind]] = {}
    for feature in features:
        for name, value in (feature.get("properties") or {}).items():
            kinds = seen.setdefault(name, set())
            if value is not None:
                kinds.add(_kind_of(value))

    return {
        name: FieldInfo(name, _merge_kinds(kinds), declared="")
        for name, kinds in seen.items()
    }


def _kind_of(value: Any) -> FieldKind:
    if isinstance(value, bool):
        return FieldKind.BOOLEAN

    if isinstance(value, int):
        return FieldKind.INTEGER

    if isinstance(value, float):
        return FieldKind.REAL

    if isinstance(value, str):
        return FieldKind.TEXT

    return FieldKind.JSON


def _merge_kinds(kinds: set[FieldKind]) -> FieldKind:
    if len(kinds) == 1:
        return next(iter(kinds))

    if kinds == {FieldKind.INTEGER, FieldKind.REAL}:
        return FieldKind.REAL

    return FieldKind.ANY


def _row(feature: dict[str, Any], fields: dict[str, FieldInfo]) -> MemoryRow:
    properties = feature.get("properties") or {}
    attributes = {name: properties.get(name) for name in fields}
    raw = feature.get("geometry")
    geometry = geometry_from_geojson(raw) if raw is not None else None
    return MemoryRow(attributes, geometry, source=feature)


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")

    if hasattr(value, "isoformat"):
        return value.isoformat()

    return value


def _check_row(row: MemoryRow) -> None:
    geometry = row.geometry
    if geometry is None:
        return

    if (
        geometry.type in CURVED_TYPES
        or geometry.type.value > GeomType.GEOMETRYCOLLECTION
    ):
        raise FeatureWriteError(f"GeoJSON cannot hold a {geometry.type.name} geometry")


def geometry_from_geojson(value: Any) -> Geometry:
    try:
        geom_type = _GEOJSON_TYPES[value["type"]]
        if geom_type is GeomType.GEOMETRYCOLLECTION:
            parts = tuple(geometry_from_geojson(g) for g in value["geometries"])
            has_z = any(p.has_z for p in parts)
            return Geometry(geom_type, has_z, parts=parts)

        return _from_coordinates(geom_type, value["coordinates"])
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise GeometryValueError(f"invalid GeoJSON geometry: {exc}") from exc


def _from_coordinates(geom_type: GeomType, coordinates: Any) -> Geometry:
    has_z = _depth_has_z(coordinates)
    if geom_type in COORD_TYPES:
        points = [coordinates] if geom_type is GeomType.POINT else coordinates
        coords = tuple(_position(p, has_z) for p in points if p)
        return Geometry(geom_type, has_z, coords=coords)

    if geom_type in RING_TYPES:
        rings = tuple(
            _from_coordinates(GeomType.LINESTRING, ring) for ring in coordinates
        )
        return Geometry(geom_type, has_z, parts=rings)

    part_type = {
        GeomType.MULTIPOINT: GeomType.POINT,
        GeomType.MULTILINESTRING: GeomType.LINESTRING,
        GeomType.MULTIPOLYGON: GeomType.POLYGON,
    }[geom_type]
    parts = tuple(_from_coordinates(part_type, part) for part in coordinates)
    return Geometry(geom_type, has_z, parts=parts)


def _depth_has_z(coordinates: Any) -> bool:
    while (
        isinstance(coordinates, list)
        and coordinates
        and isinstance(coordinates[0], list)
    ):
        coordinates = coordinates[0]

    return isinstance(coordinates, list) and len(coordinates) >= 3


def _position(value: list[Any], has_z: bool) -> tuple[float, ...]:
    x, y = float(value[0]), float(value[1])
    if has_z:
        return (x, y, float(value[2]) if len(value) > 2 else 0.0)

    return (x, y)


def geometry_to_geojson(geometry: Geometry) -> dict[str, Any]:
    name = _TYPE_NAMES[geometry.type]
    if geometry.type is GeomType.GEOMETRYCOLLECTION:
        return {
            "type": name,
            "geometries": [geometry_to_geojson(p) for p in geometry.parts],
        }

    return {"type": name, "coordinates": _coordinates(geometry)}


def _coordinates(geometry: Geometry) -> Any:
    if geometry.type is GeomType.POINT:
        return list(geometry.coords[0][: 2 + geometry.has_z]) if geometry.coords else []

    if geometry.type in COORD_TYPES:
        return [list(c[: 2 + geometry.has_z]) for c in geometry.coords]

    return [_coordinates(part) for part in geometry.parts]


def _bbox(geometry: Geometry | None) -> list[float] | None:
    env = geometry.envelope() if geometry is not None else None
    return None if env is None else [env.min_x, env.min_y, env.max_x, env.max_y]


def _collection_bbox(layer: MemoryLayer) -> list[float] | None:
    total = None
    for row in layer.live_rows():
        env = row.geometry.envelope() if row.geometry is not None else None
        if env is not None:
            total = env.union(total)

    return (
        None if total is None else [total.min_x, total.min_y, total.max_x, total.max_y]
    )


def dump_collection(document: dict[str, Any]) -> str:
    """GDAL's GeoJSON layout: members on their own lines, one feature per line."""
    lines = ["{"]
    items = list(document.items())
    for position, (key, value) in enumerate(items):
        comma = "," if position < len(items) - 1 else ""
        if key == "features":
            lines.append('"features": [')
            lines.extend(
                _inline(feature) + ("," if i < len(value) - 1 else "")
                for i, feature in enumerate(value)
            )
            lines.append("]" + comma)
        else:
            lines.append(
                f"{json.dumps(key, ensure_ascii=False)}: {_inline(value)}{comma}"
            )

    lines.append("}")
    return "\n".join(lines) + "\n"


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        if not value:
            return "{ }"

        members = ", ".join(
            f"{json.dumps(k, ensure_ascii=False)}: {_inline(v)}"
            for k, v in value.items()
        )
        return "{ " + members + " }"

    if isinstance(value, list):
        return "[ " + ", ".join(_inline(v) for v in value) + " ]" if value else "[ ]"

    return json.dumps(value, ensure_ascii=False)
