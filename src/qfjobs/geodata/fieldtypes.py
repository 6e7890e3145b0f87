"""Attribute field types: what is carried from a source into the GeoPackage.

Field types travel as Arrow types, which GDAL maps on both ends:

=====================  ==========================  ===========================
source (OGR / PG)      Arrow                       GeoPackage column (OGR type)
=====================  ==========================  ===========================
Integer / int4         int32                       MEDIUMINT (Integer)
Integer64 / int8       int64                       INTEGER (Integer64)
Int16 / int2           int16                       SMALLINT (Integer, Int16)
Real / float8          float64                     REAL (Real)
Float32 / float4       float32                     FLOAT (Real, Float32)
String(n) / varchar(n) string + ``GDAL:OGR:width``  TEXT(n) (String)
Date                   date32                      DATE (Date)
Time                   time                        TEXT (String): GeoPackage has
                                                   no time type
DateTime / timestamp   timestamp                   DATETIME (DateTime)
Boolean / bool         bool                        BOOLEAN (Integer, Boolean)
Binary / bytea         binary                      BLOB (Binary)
JSON / json, jsonb     ``arrow.json`` extension    TEXT (String, JSON)
StringList / text[]    list<string>                TEXT (String, JSON)
=====================  ==========================  ===========================

GDAL's own field metadata rides along in Arrow field metadata; only the keys
in :data:`KEPT_METADATA` are kept (a field domain, for one, would name a
domain that does not exist in the package).
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]
import pyogrio

from qfjobs.geodata import gpkg_catalog

logger = logging.getLogger(__name__)

KEPT_METADATA = frozenset(
    {
        b"GDAL:OGR:width",
        b"GDAL:OGR:alternative_name",
        b"GDAL:OGR:comment",
        b"GDAL:OGR:default",
        b"GDAL:OGR:unique",
    }
)


@dataclass(frozen=True)
class FieldInfo:
    """One attribute column as written: OGR type names without ``OFT``/``OFST``."""

    name: str
    type: str
    subtype: str | None = None
    width: int | None = None


@dataclass(frozen=True)
class PostgresFieldMapping:
    """How one PostgreSQL column is selected and which Arrow field it fills.

    ``cast`` is SQL put after the column (``::float8``), ``None`` to select it
    as it is.
    """

    field: pa.Field
    cast: str | None = None


def renamed_field(field: pa.Field, name: str) -> pa.Field:
    """``field`` under ``name``, with only the GDAL metadata worth keeping."""
    metadata = {
        key: value
        for key, value in (field.metadata or {}).items()
        if key in KEPT_METADATA
    }
    return pa.field(name, field.type, field.nullable, metadata or None)


def is_integer_field(field: pa.Field) -> bool:
    return bool(pa.types.is_integer(field.type))


_PG_SCALARS: dict[str, tuple[pa.DataType, str | None]] = {
    "int2": (pa.int16(), None),
    "int4": (pa.int32(), None),
    "int8": (pa.int64(), None),
    "oid": (pa.int64(), "::int8"),
    "float4": (pa.float32(), None),
    "float8": (pa.float64(), None),
    # QGIS reads numeric as Double as well; Decimal values would be slow.
    "numeric": (pa.float64(), "::float8"),
    "bool": (pa.bool_(), None),
    "text": (pa.string(), None),
    "varchar": (pa.string(), None),
    "bpchar": (pa.string(), None),
    "name": (pa.string(), "::text"),
    "date": (pa.date32(), None),
    "time": (pa.time64("us"), None),
    "timestamp": (pa.timestamp("us"), None),
    "timestamptz": (pa.timestamp("us", tz="UTC"), None),
    "bytea": (pa.binary(), None),
    "json": (pa.json_(pa.string()), "::text"),
    "jsonb": (pa.json_(pa.string()), "::text"),
}

_PG_ARRAYS: dict[str, tuple[pa.DataType, str | None]] = {
    "text": (pa.string(), None),
    "varchar": (pa.string(), "::text[]"),
    "bpchar": (pa.string(), "::text[]"),
    "int2": (pa.int32(), "::int4[]"),
    "int4": (pa.int32(), None),
    "int8": (pa.int64(), None),
    "float4": (pa.float64(), "::float8[]"),
    "float8": (pa.float64(), None),
    "numeric": (pa.float64(), "::float8[]"),
}

_PG_WIDTH_TYPES = frozenset({"varchar", "bpchar"})


def postgres_field(
    name: str, type_name: str, type_modifier: int, element_type: str | None
) -> PostgresFieldMapping:
    """The Arrow field and select cast for a non-geometry PostgreSQL column.

    ``type_name`` is ``pg_type.typname``; ``element_type`` the element's
    typname for arrays. Types without a mapping (uuid, interval, hstore,
    ranges, enums, ...) are read as their text form.
    """
    if element_type is not None:
        element, cast = _PG_ARRAYS.get(element_type, (pa.string(), "::text[]"))
        return PostgresFieldMapping(pa.field(name, pa.list_(element)), cast)

    arrow_type, cast = _PG_SCALARS.get(type_name, (pa.string(), "::text"))
    metadata = None
    if type_name in _PG_WIDTH_TYPES and type_modifier > 4:
        # A varchar(n)'s atttypmod is n + 4 (the varlena header).
        metadata = {b"GDAL:OGR:width": str(type_modifier - 4).encode()}
    return PostgresFieldMapping(pa.field(name, arrow_type, True, metadata), cast)


def written_fields(gpkg_path: Path, table: str) -> tuple[FieldInfo, ...]:
    """The attribute columns of ``table`` as GDAL reads them back.

    Types come from pyogrio; string widths from the declared column types
    (``TEXT(80)``), which pyogrio does not report.
    """
    info = pyogrio.read_info(gpkg_path, layer=table)
    declared = gpkg_catalog.declared_column_types(gpkg_path, table)
    fields = []
    for name, ogr_type, ogr_subtype in zip(
        info["fields"], info["ogr_types"], info["ogr_subtypes"], strict=True
    ):
        subtype = ogr_subtype.removeprefix("OFST")
        fields.append(
            FieldInfo(
                name=str(name),
                type=ogr_type.removeprefix("OFT"),
                subtype=None if subtype == "None" else subtype,
                width=_declared_width(declared.get(str(name).lower(), "")),
            )
        )
    return tuple(fields)


def _declared_width(declared: str) -> int | None:
    """``80`` for ``TEXT(80)``; None when the type has no width."""
    head, _, rest = declared.partition("(")
    if head.strip().upper() != "TEXT" or not rest.endswith(")"):
        return None
    digits = rest[:-1].strip()
    return int(digits) if digits.isdigit() else None
