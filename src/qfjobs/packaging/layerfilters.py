"""A layer's filter (its ``subset`` / ``sql=``) in the package.

In the package a converted layer reads ``data.gpkg``, so QField evaluates
its filter with SQLite (GDAL's GeoPackage driver), no longer in the source's
SQL dialect. PostgreSQL filters often use SQL SQLite does not know
(``ILIKE``, ``::text`` casts, ``now() - interval '1 day'``), or SQL that
SQLite reads differently (``LIKE`` is case-insensitive in SQLite). Copied
unchanged, such a filter breaks the layer or shows the wrong rows.

So after a table is written, each of its layers' filters is checked
(:func:`check_filter`):

* ``kept``: SQLite evaluates the filter on the packaged table and selects as
  many rows as the source does with it (same area of interest). The filter
  stays a filter and every row is packaged.
* ``applied_at_source``: otherwise, when the source can evaluate it
  (``postgres``, ``ogr`` and ``spatialite`` layers, in their own dialect):
  only the matching rows are packaged, in a table of the layer's own, and the
  packaged layer has no filter.
* ``dropped``: filters of delimited-text and memory layers are QGIS
  expressions the server cannot evaluate at the source; when SQLite cannot
  evaluate one either (or a filter neither the source nor SQLite can
  evaluate), it is removed and the layer shows all its rows rather than
  none. The layer's feedback and the job's warnings say so.

Known limits: the comparison is by row count, so a filter SQLite reads
differently that happens to select as many rows is kept; a filter that
depends on the time (``now()``) and is valid in both dialects is kept and
evaluated on the device.
"""

import logging
import warnings
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyogrio

from qfjobs.errors import DataSourceError
from qfjobs.geodata.gpkg_export import count_at_source
from qfjobs.geodata.sources import BBox, Source

logger = logging.getLogger(__name__)

#: Providers whose filter the source evaluates in the dialect QGIS uses.
SOURCE_DIALECT_PROVIDERS = frozenset({"postgres", "ogr", "spatialite"})


class FilterOutcome(StrEnum):
    KEPT = "kept"
    APPLIED_AT_SOURCE = "applied_at_source"
    DROPPED = "dropped"


@dataclass(frozen=True)
class FilterCheck:
    """What happens to one layer's filter, and why."""

    subset: str
    outcome: FilterOutcome
    reason: str
    package_matches: int | None = None
    source_matches: int | None = None

    @property
    def stays_on_layer(self) -> bool:
        return self.outcome is FilterOutcome.KEPT

    def as_feedback(self) -> dict[str, Any]:
        return {
            "filter": self.subset,
            "outcome": str(self.outcome),
            "reason": self.reason,
            "package_matches": self.package_matches,
            "source_matches": self.source_matches,
        }


def count_in_package(gpkg: Path, table: str, subset: str) -> int | None:
    """Rows of the packaged ``table`` matching ``subset``, as QField selects them.

    None when SQLite (with GDAL's functions) cannot evaluate the filter. The
    filter ends on a line of its own, so a trailing ``--`` comment ends there.
    """
    quoted = table.replace('"', '""')
    query = f'SELECT count(*) AS n FROM "{quoted}" WHERE (\n{subset}\n)'
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _meta, result = pyogrio.read_arrow(str(gpkg), sql=query)
    except (RuntimeError, OSError, ValueError) as exc:
        logger.debug("table %s: SQLite cannot evaluate %r: %s", table, subset, exc)
        return None
    if result.num_rows != 1:
        return None
    return int(result.column(0)[0].as_py())


def check_filter(
    gpkg: Path,
    table: str,
    subset: str,
    source: Source | None,
    provider: str,
    bbox: BBox | None,
) -> FilterCheck:
    """Decide what happens to ``subset`` once ``table`` holds every row."""
    in_package = count_in_package(gpkg, table, subset)
    if source is None or provider not in SOURCE_DIALECT_PROVIDERS:
        return _expression_filter(subset, provider, in_package)

    try:
        at_source = count_at_source(source, bbox, subset)
    except DataSourceError as exc:
        if in_package is None:
            return FilterCheck(
                subset,
                FilterOutcome.DROPPED,
                "neither the source nor the GeoPackage (SQLite) can evaluate "
                f"the filter ({exc}): removed, the packaged layer shows all "
                "its rows",
            )
        return FilterCheck(
            subset,
            FilterOutcome.KEPT,
            "the source could not evaluate the filter, the GeoPackage can: "
            "kept as a filter on all rows",
            in_package,
        )

    if in_package is None:
        reason = (
            f"the filter is {provider} SQL the GeoPackage (SQLite) cannot "
            f"evaluate: applied while packaging, {at_source} matching row(s) "
            "packaged, and removed from the packaged layer"
        )
        return FilterCheck(
            subset, FilterOutcome.APPLIED_AT_SOURCE, reason, None, at_source
        )
    if in_package != at_source:
        reason = (
            f"SQLite selects {in_package} row(s) with the filter where the "
            f"source selects {at_source}: applied while packaging, the "
            "matching rows packaged, and removed from the packaged layer"
        )
        return FilterCheck(
            subset, FilterOutcome.APPLIED_AT_SOURCE, reason, in_package, at_source
        )
    return FilterCheck(
        subset,
        FilterOutcome.KEPT,
        f"valid in the GeoPackage and selects the same {at_source} row(s): "
        "kept as a filter, all rows packaged",
        in_package,
        at_source,
    )


def _expression_filter(
    subset: str, provider: str, in_package: int | None
) -> FilterCheck:
    """Filters the server cannot evaluate at the source (QGIS expressions)."""
    if in_package is not None:
        return FilterCheck(
            subset,
            FilterOutcome.KEPT,
            "valid in the GeoPackage: kept as a filter, all rows packaged",
            in_package,
        )
    return FilterCheck(
        subset,
        FilterOutcome.DROPPED,
        f"the {provider} layer's filter cannot be evaluated by the GeoPackage "
        "(SQLite) nor by the server: removed, the packaged layer shows all "
        "its rows",
    )
