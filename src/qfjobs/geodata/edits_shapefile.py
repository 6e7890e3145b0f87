"""Shapefile layers (``.shp`` + ``.shx`` + ``.dbf``, or a bare ``.dbf`` table).

The whole layer is edited in memory (``edits_memory``) and written back as a new
file set swapped in with ``edits_swap.replace_file_set``: the ``.shp``, ``.shx``
and ``.dbf`` are replaced together and stale spatial indexes (``.qix``,
``.sbn``, ``.sbx``) are deleted in the same swap; ``.prj``, ``.cpg`` and any
other sidecar stay untouched. Records marked deleted in the ``.dbf`` are dropped
(the file is repacked, as GDAL does), so record numbers of later features shift;
features are found by their key attribute, never by record number.

The text encoding is the ``.cpg`` file's, else the layer's encoding, else the
dBASE language driver byte, else ISO-8859-1 (GDAL's default).
"""

import codecs
import logging
from datetime import date
from pathlib import Path

from qfjobs.geodata.edits_dbf import (
    LANGUAGE_DRIVERS,
    DbfTable,
    decode_record,
    encode_record,
    is_deleted,
    read_dbf,
    write_dbf,
)
from qfjobs.geodata.edits_memory import MemoryLayer, MemoryRow, RewriteStore
from qfjobs.geodata.edits_shp import (
    decode_shape,
    encode_shape,
    geometry_column,
    read_shp,
    write_shp,
)
from qfjobs.geodata.edits_store import LayerSchema, StoreOpenError, match_pk
from qfjobs.geodata.edits_swap import replace_file_set
from qfjobs.geodata.edits_target import FileLayer

logger = logging.getLogger(__name__)

_STALE_INDEXES = (".qix", ".sbn", ".sbx")
_CPG_ALIASES = {"UTF8": "utf-8", "88591": "latin-1", "ANSI": "cp1252"}


class ShapefileStore(RewriteStore):
    def __init__(self, path: Path, encoding: str | None) -> None:
        super().__init__(path)
        self.files = _sidecars(path)
        self.layer_encoding = encoding
        self.encoding = "latin-1"
        self.dbf: DbfTable | None = None
        self.shape_type: int | None = None

    def load(self, target: FileLayer) -> MemoryLayer:
        dbf_path = self.files.get(".dbf")
        if dbf_path is None:
            raise StoreOpenError(f"{self.path} has no .dbf file")

        raw_dbf = dbf_path.read_bytes()
        try:
            self.encoding = self._encoding(raw_dbf[29] if len(raw_dbf) > 29 else 0)
            self.dbf = read_dbf(raw_dbf, self.encoding)
            contents = self._shapes(target.is_spatial, len(self.dbf.records))
        except ValueError as exc:
            raise StoreOpenError(f"{self.path} cannot be read: {exc}") from exc

        fields = {f.name: f.info() for f in self.dbf.fields}
        pk = match_pk(fields, target.pk_column, self.path.name)
        geometry = (
            geometry_column(self.shape_type) if self.shape_type is not None else None
        )
        schema = LayerSchema(fields=fields, pk=pk, geometry=geometry)
        rows = [
            MemoryRow(
                decode_record(self.dbf, record, self.encoding),
                decode_shape(content) if content is not None else None,
                source=(record, content),
            )
            for record, content in zip(self.dbf.records, contents, strict=True)
            if not is_deleted(record)
        ]
        return MemoryLayer(schema, rows, check_row=self._check_row)

    def _encoding(self, language_driver: int) -> str:
        cpg = self.files.get(".cpg")
        if cpg is not None:
            declared = cpg.read_text("ascii", errors="replace").strip()
            name = _CPG_ALIASES.get(declared.upper().replace("-", ""), declared)
            if name.isdigit():
                name = f"cp{name}"

            try:
                return codecs.lookup(name).name
            except LookupError:
                logger.warning("Unknown .cpg encoding %s of %s", declared, self.path)

        if self.layer_encoding:
            return self.layer_encoding

        return LANGUAGE_DRIVERS.get(language_driver, "latin-1")

    def _shapes(self, spatial: bool, count: int) -> list[bytes | None]:
        shp = self.files.get(".shp")
        if not spatial:
            return [None] * count

        if shp is None:
            raise ValueError("the layer has geometries but there is no .shp file")

        self.shape_type, contents = read_shp(shp.read_bytes())
        if len(contents) != count:
            raise ValueError(f".shp has {len(contents)} records, .dbf {count}")

        return list(contents)

    def _check_row(self, row: MemoryRow) -> None:
        assert self.dbf is not None
        encode_record(self.dbf, row.attributes, self.encoding, _original_record(row))
        if self.shape_type is not None:
            encode_shape(row.geometry, self.shape_type)

    def save(self, layer: MemoryLayer) -> None:
        assert self.dbf is not None
        records: list[bytes] = []
        contents: list[bytes] = []
        for row in layer.live_rows():
            record, content = row.source if row.source is not None else (None, None)
            if row.changed or record is None:
                record = encode_record(self.dbf, row.attributes, self.encoding, record)
                if self.shape_type is not None:
                    content = encode_shape(row.geometry, self.shape_type)

            records.append(record)
            if content is not None:
                contents.append(content)

        files: dict[str, bytes | None] = {
            self._name(".dbf"): write_dbf(self.dbf, records, date.today())
        }
        if self.shape_type is not None:
            shp, shx = write_shp(self.shape_type, contents)
            files[self._name(".shp")] = shp
            files[self._name(".shx")] = shx

        for suffix in _STALE_INDEXES:
            if suffix in self.files:
                files[self.files[suffix].name] = None

        replace_file_set(self.path.parent, files)

    def _name(self, suffix: str) -> str:
        existing = self.files.get(suffix)
        return existing.name if existing is not None else self.path.stem + suffix


def _original_record(row: MemoryRow) -> bytes | None:
    return None if row.source is None else row.source[0]


def _sidecars(path: Path) -> dict[str, Path]:
    """The files of the shapefile, by lower-case suffix (``.SHP`` works too)."""
    stem = path.stem.casefold()
    found: dict[str, Path] = {}
    for entry in path.parent.iterdir():
        if entry.is_file() and entry.stem.casefold() == stem:
            found.setdefault(entry.suffix.lower(), entry)

    return found
