"""Any other vector format GDAL writes (FlatGeobuf, ODS, XLSX, GML, KML...).

The dataset is read with pyogrio, every layer of it, edited in memory, written by
GDAL into a temporary directory next to it with the same driver, and swapped in
(``edits_swap``; several files when the driver writes sidecars). Other layers of
the dataset are copied along unchanged in content.

This path is lossy in ways the dedicated handlers are not, and is only used for
formats without one: GDAL decides field widths, precision and layer options
anew, styles and formatting of spreadsheets are not kept, some drivers reorder
features (FlatGeobuf sorts by its spatial index), and a float NaN reads as NULL.
"""

import logging
import math
import tempfile
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pyogrio.raw

from qfjobs.geodata.edits_geometry import GeometryColumn, GeomType
from qfjobs.geodata.edits_memory import MemoryLayer, MemoryRow, RewriteStore
from qfjobs.geodata.edits_sqlite import format_datetime
from qfjobs.geodata.edits_store import LayerSchema, StoreOpenError, match_pk
from qfjobs.geodata.edits_swap import replace_file, replace_file_set
from qfjobs.geodata.edits_target import FileLayer
from qfjobs.geodata.edits_values import FieldInfo, FieldKind, parse_datetime
from qfjobs.geodata.edits_wkb import from_wkb, to_wkb

logger = logging.getLogger(__name__)

_OGR_KINDS = {
    "OFTInteger": FieldKind.INTEGER,
    "OFTInteger64": FieldKind.INTEGER,
    "OFTReal": FieldKind.REAL,
    "OFTString": FieldKind.TEXT,
    "OFTDate": FieldKind.DATE,
    "OFTTime": FieldKind.TIME,
    "OFTDateTime": FieldKind.DATETIME,
    "OFTBinary": FieldKind.BLOB,
}
_DTYPES = {
    FieldKind.INTEGER: "int64",
    FieldKind.REAL: "float64",
    FieldKind.BOOLEAN: "bool",
}


class _LayerData:
    """One layer as pyogrio read it: metadata, fields and rows."""

    def __init__(self, name: str, meta: dict[str, Any], rows: list[MemoryRow]) -> None:
        self.name = name
        self.meta = meta
        self.rows = rows
        self.kinds = [
            _kind(ogr_type, subtype)
            for ogr_type, subtype in zip(
                meta["ogr_types"], meta["ogr_subtypes"], strict=True
            )
        ]


class OgrStore(RewriteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.driver = ""
        self.layers: list[_LayerData] = []
        self.edited: _LayerData | None = None

    def load(self, target: FileLayer) -> MemoryLayer:
        try:
            self.driver = str(pyogrio.read_info(self.path)["driver"])
            names = [str(row[0]) for row in pyogrio.list_layers(self.path)]
            self.layers = [self._read_layer(name) for name in names]
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise StoreOpenError(f"GDAL cannot read {self.path}: {exc}") from exc

        wanted = target.layer_name or (names[0] if len(names) == 1 else None)
        self.edited = next(
            (layer for layer in self.layers if layer.name == wanted), None
        )
        if self.edited is None:
            raise StoreOpenError(f'{self.path} has no layer "{target.layer_name}"')

        fields = {
            str(name): FieldInfo(str(name), kind, declared=ogr_type)
            for name, kind, ogr_type in zip(
                self.edited.meta["fields"],
                self.edited.kinds,
                self.edited.meta["ogr_types"],
                strict=True,
            )
        }
        geometry = None
        if target.is_spatial and self.edited.meta.get("geometry_type"):
            geometry = GeometryColumn("geometry", GeomType.GEOMETRY, 0)

        schema = LayerSchema(
            fields=fields,
            pk=match_pk(fields, target.pk_column, self.path.name),
            geometry=geometry,
        )
        return MemoryLayer(schema, self.edited.rows)

    def _read_layer(self, name: str) -> _LayerData:
        meta, _, geometries, columns = pyogrio.raw.read(
            self.path, layer=name, datetime_as_string=True
        )
        names = [str(n) for n in meta["fields"]]
        values = [[_python(v) for v in column.tolist()] for column in columns]
        rows = []
        for i in range(
            len(geometries)
            if geometries is not None
            else len(values[0])
            if values
            else 0
        ):
            attributes = {n: values[j][i] for j, n in enumerate(names)}
            raw = geometries[i] if geometries is not None else None
            rows.append(
                MemoryRow(attributes, from_wkb(raw) if raw is not None else None)
            )

        return _LayerData(name, meta, rows)

    def save(self, layer: MemoryLayer) -> None:
        assert self.edited is not None
        self.edited.rows = list(layer.live_rows())
        with tempfile.TemporaryDirectory(
            dir=self.path.parent, prefix=".qfjobs-ogr-"
        ) as folder:
            output = Path(folder) / self.path.name
            for position, data in enumerate(self.layers):
                self._write_layer(output, data, append=position > 0)

            produced = {
                p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()
            }

        if list(produced) == [self.path.name]:
            replace_file(self.path, produced[self.path.name])
        else:
            replace_file_set(self.path.parent, dict(produced))

    def _write_layer(self, output: Path, data: _LayerData, append: bool) -> None:
        names = [str(n) for n in data.meta["fields"]]
        columns = []
        masks = []
        for name, kind in zip(names, data.kinds, strict=True):
            values = [row.attributes.get(name) for row in data.rows]
            column, mask = _column(values, kind)
            columns.append(column)
            masks.append(mask)

        geometry_type = data.meta.get("geometry_type")
        geometries = None
        if geometry_type:
            geometries = np.array(
                [None if r.geometry is None else to_wkb(r.geometry) for r in data.rows],
                dtype=object,
            )

        pyogrio.raw.write(
            output,
            geometries,
            columns,
            names,
            field_mask=masks,
            layer=data.name,
            driver=self.driver,
            geometry_type=geometry_type,
            crs=data.meta.get("crs"),
            encoding=data.meta.get("encoding"),
            append=append,
        )


def _kind(ogr_type: str, subtype: str) -> FieldKind:
    if subtype == "OFSTBoolean":
        return FieldKind.BOOLEAN

    if subtype == "OFSTJSON":
        return FieldKind.JSON

    return _OGR_KINDS.get(ogr_type, FieldKind.ANY)


def _python(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None

    return value


def _column(
    values: list[Any], kind: FieldKind
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    mask = np.array([v is None for v in values], dtype=bool)
    dtype = _DTYPES.get(kind)
    if dtype is not None:
        filled = [0 if v is None else v for v in values]
        return np.array(filled, dtype=dtype), mask

    if kind in (FieldKind.DATE, FieldKind.DATETIME):
        unit = "D" if kind is FieldKind.DATE else "ms"
        stamps = [_datetime64(v) for v in values]
        return np.array(stamps, dtype=f"datetime64[{unit}]"), mask

    return np.array([_text_or_bytes(v) for v in values], dtype=object), mask


def _datetime64(value: Any) -> str:
    """``value`` as the text numpy reads into a ``datetime64`` (NaT for None)."""
    if value is None:
        return "NaT"

    moment = value if isinstance(value, date) else parse_datetime(value)
    if isinstance(moment, datetime) and moment.tzinfo is not None:
        moment = moment.replace(tzinfo=None)

    return moment.isoformat()


def _text_or_bytes(value: Any) -> Any:
    if value is None or isinstance(value, str | bytes):
        return value

    if isinstance(value, datetime):
        return format_datetime(value)

    if isinstance(value, date | time):
        return value.isoformat()

    return str(value)
