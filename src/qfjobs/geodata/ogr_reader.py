"""Reading any GDAL vector source as a stream of Arrow record batches.

The stream comes from :func:`pyogrio.open_arrow`, so at most one batch is in
memory at a time. A few GDAL drivers load the whole file when it is opened
(LIBKML, XLSX, ODS); their memory use is GDAL's and not bounded here.

The declared geometry type is exact for GeoPackage sources (read from the
catalog) and otherwise pyogrio's linearised, M-less report, refined later from
the data. Shapefile line and polygon layers are declared multi-part, because
their records may be multi-part and QGIS reads them as such.
"""

import glob
import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyogrio

from qfjobs.errors import DataSourceError
from qfjobs.geodata import gpkg_catalog
from qfjobs.geodata.geometrytypes import GeometryType, from_pyogrio
from qfjobs.geodata.sources import (
    BBox,
    OgrSource,
    OpenedLayer,
    SourceLayer,
    features_per_batch,
    source_label,
)

logger = logging.getLogger(__name__)

_WKB_EXTENSIONS = {b"geoarrow.wkb", b"ogc.wkb"}
#: Batch length when nothing tells the size of a feature.
DEFAULT_BATCH_FEATURES = 2_000
_SHAPEFILE_MULTI = {"LINESTRING": "MULTILINESTRING", "POLYGON": "MULTIPOLYGON"}


@contextmanager
def open_layer(
    source: OgrSource,
    bbox: BBox | None,
    batch_size: int | None,
    where: str | None = None,
) -> Iterator[OpenedLayer]:
    """Open ``source`` for streaming; ``bbox`` filters features with geometry.

    ``where`` is an attribute filter in the source driver's own SQL dialect
    (SQLite for GeoPackage and SpatiaLite, OGR SQL for the others), as a QGIS
    ``ogr`` layer's subset is. ``batch_size`` None sizes batches from the
    dataset's bytes per feature. Raises :class:`DataSourceError` when the
    dataset or layer cannot be opened or the filter not evaluated.
    """
    label = source_label(source)
    path = str(source.path)
    options = dict(source.open_options)
    info = _read_info(label, path, source.layer, options)
    layer_name = str(info["layer_name"])
    native_fid = str(info["fid_column"]) or None
    geometry_type, exact = _declared_geometry_type(path, layer_name, info)
    batch_size = batch_size or _batch_size(Path(path), int(info["features"]))
    logger.debug("reading %s in batches of %s features", label, batch_size)

    with ExitStack() as stack:
        try:
            meta, reader = stack.enter_context(
                pyogrio.open_arrow(
                    path,
                    layer=layer_name,
                    use_pyarrow=True,
                    return_fids=native_fid is not None,
                    batch_size=batch_size,
                    bbox=bbox if geometry_type is not None else None,
                    where=where,
                    **options,
                )
            )
        except (RuntimeError, OSError, ValueError) as exc:
            message = f"Cannot read {label}: {exc}"
            raise DataSourceError(message, source=label) from exc

        geometry_column = None
        if geometry_type is not None:
            geometry_column = _geometry_column(meta, reader.schema)
        layer = SourceLayer(
            label=label,
            schema=reader.schema,
            geometry_column=geometry_column,
            geometry_type=geometry_type,
            geometry_type_exact=exact,
            crs=source.layer_crs or meta["crs"] or None,
            native_fid_column=meta["fid_column"] if native_fid else None,
            primary_key=meta["fid_column"] if native_fid else None,
        )
        yield OpenedLayer(layer, iter(reader))


def count_features(source: OgrSource, bbox: BBox | None, where: str) -> int:
    """How many features of ``source`` match ``where`` (and ``bbox``).

    Streams the attributes without geometries (GDAL evaluates the filter on
    the fields it reads, so none can be left out). Raises
    :class:`DataSourceError` when the driver cannot evaluate the filter.
    """
    label = source_label(source)
    path = str(source.path)
    options = dict(source.open_options)
    info = _read_info(label, path, source.layer, options)
    has_geometry = from_pyogrio(info["geometry_type"]) is not None
    try:
        with pyogrio.open_arrow(
            path,
            layer=str(info["layer_name"]),
            use_pyarrow=True,
            read_geometry=False,
            batch_size=_batch_size(Path(path), int(info["features"])),
            bbox=bbox if has_geometry else None,
            where=where,
            **options,
        ) as (_meta, reader):
            return sum(batch.num_rows for batch in reader)
    except (RuntimeError, OSError, ValueError) as exc:
        message = f"Cannot filter {label} with {where!r}: {exc}"
        raise DataSourceError(message, source=label) from exc


def _batch_size(path: Path, feature_count: int) -> int:
    """Features per batch from the size on disk; a guess, on the safe side.

    The bytes of every file named like the dataset are counted (a shapefile's
    .dbf and .shx too, or other tables of a GeoPackage), which can only make
    batches smaller than needed.
    """
    if feature_count <= 0:
        return DEFAULT_BATCH_FEATURES
    if path.is_dir():
        size = sum(item.stat().st_size for item in path.iterdir() if item.is_file())
    elif path.is_file():
        siblings = path.parent.glob(glob.escape(path.stem) + ".*")
        size = sum(item.stat().st_size for item in siblings if item.is_file())
    else:
        return DEFAULT_BATCH_FEATURES
    return features_per_batch(size / feature_count)


def _read_info(
    label: str, path: str, layer: str | None, options: dict[str, str]
) -> dict[str, Any]:
    try:
        info: dict[str, Any] = pyogrio.read_info(path, layer=layer, **options)
    except (RuntimeError, OSError) as exc:
        raise DataSourceError(f"Cannot open {label}: {exc}", source=label) from exc
    return info


def _declared_geometry_type(
    path: str, layer_name: str, info: dict[str, Any]
) -> tuple[GeometryType | None, bool]:
    """The layer's geometry type, and whether it is exact."""
    reported = from_pyogrio(info["geometry_type"])
    if reported is None:
        return None, True

    if info["driver"] == "GPKG" and Path(path).is_file():
        declared = gpkg_catalog.declared_geometry_type(Path(path), layer_name)
        if declared is not None:
            return declared[1], True

    if info["driver"] == "ESRI Shapefile" and reported.base in _SHAPEFILE_MULTI:
        reported = GeometryType(_SHAPEFILE_MULTI[reported.base], reported.z, False)
    return reported, False


def _geometry_column(meta: dict[str, Any], schema: pa.Schema) -> str:
    """The stream's WKB column: pyogrio names it, or only its type tells."""
    if meta["geometry_name"]:
        return str(meta["geometry_name"])

    for field in schema:
        if (field.metadata or {}).get(b"ARROW:extension:name") in _WKB_EXTENSIONS:
            return str(field.name)
    raise DataSourceError("The Arrow stream has no WKB geometry column")
