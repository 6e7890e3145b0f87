"""Checking a layer's data source for real, whatever its provider.

:class:`SourceChecker` is the one entry point: ``check(source)`` returns a
:class:`~qfjobs.qgis.checkresult.SourceCheck`. It dispatches on the source
kind and provider:

* files (ogr, gdal, delimitedtext, spatialite, local tiles, mesh and point
  clouds): located inside the data root (:mod:`qfjobs.qgis.pathguard`), then
  opened with the matching checker; providers without a checker here (mdal,
  pdal, ...) only need the file to exist;
* PostgreSQL: :mod:`qfjobs.qgis.pgcheck`;
* web services: valid without any contact (they are "online");
* memory layers: valid, with no data on the server;
* virtual layers: valid when every layer they reference is valid
  (:meth:`SourceChecker.check_virtual`);
* localized sources: always ``localized_dataprovider``.

Use it as a context manager: WAL-mode databases are staged into a temporary
folder that lives as long as the checker.
"""

import logging
import os.path
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from qfjobs.qgis.checkresult import (
    ErrorCode,
    FieldInfo,
    SourceCheck,
    invalid_layer,
    invalid_provider,
    localized,
    missing_provider,
)
from qfjobs.qgis.delimitedcheck import check_delimited
from qfjobs.qgis.ogrprobe import ProbeError, probe_vector
from qfjobs.qgis.pathguard import LocatedFile, locate_file, screen_for_gdal
from qfjobs.qgis.pgcheck import PgOptions, check_postgres
from qfjobs.qgis.rastercheck import check_raster
from qfjobs.qgis.sourcemodel import DataSource, SourceKind
from qfjobs.qgis.spatialitecheck import check_spatialite
from qfjobs.qgis.sqlitefiles import StagingArea

logger = logging.getLogger(__name__)

MAX_NESTING = 4


class SourceChecker:
    """Checks data sources of one project; reuse it for all its layers."""

    def __init__(
        self,
        project_dir: Path,
        *,
        data_root: Path | None = None,
        pg_options: PgOptions | None = None,
    ) -> None:
        self.project_dir = Path(os.path.normpath(project_dir.absolute()))
        self.data_root = Path(os.path.normpath((data_root or project_dir).absolute()))
        self.pg_options = pg_options or PgOptions()
        self._staging = StagingArea()

    def __enter__(self) -> "SourceChecker":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._staging.close()

    def check(self, source: DataSource, *, layer_type: str = "vector") -> SourceCheck:
        """Check one source; ``layer_type`` is ``maplayer/@type``."""
        if source.kind is SourceKind.LOCALIZED or source.is_localized:
            return localized(source.path)

        if source.kind is SourceKind.NONE:
            return missing_provider("", "the layer has no data provider")

        if source.kind is SourceKind.FILE:
            return self._check_file(source, layer_type)

        if source.kind is SourceKind.DATABASE:
            return self._check_database(source)

        if source.kind is SourceKind.ONLINE:
            return SourceCheck(is_valid=True, driver=source.provider)

        if source.kind is SourceKind.MEMORY:
            return _memory_check(source)

        if source.kind is SourceKind.VIRTUAL:
            return self.check_virtual(source, {})

        return missing_provider(
            source.provider,
            f'provider "{source.provider}" cannot be checked on the server',
        )

    def check_virtual(
        self, source: DataSource, referenced: Mapping[str, SourceCheck], depth: int = 0
    ) -> SourceCheck:
        """A virtual layer is valid when its referenced and embedded layers are.

        ``referenced`` maps layer ids to their (already computed) checks.
        """
        for layer_id in source.referenced_layer_ids:
            ref = referenced.get(layer_id)
            if ref is None or not ref.is_valid:
                reason = "does not exist" if ref is None else "is not valid"
                return invalid_provider(
                    "The virtual layer refers to a layer that is not available.",
                    f'referenced layer "{layer_id}" {reason}',
                )

        for embedded in source.embedded_sources:
            nested = (
                self.check_virtual(embedded, referenced, depth + 1)
                if embedded.kind is SourceKind.VIRTUAL and depth < MAX_NESTING
                else self.check(embedded)
            )
            if not nested.is_valid:
                return invalid_provider(
                    "The virtual layer embeds a layer that is not available.",
                    nested.error_summary,
                )

        return SourceCheck(
            is_valid=True, geometry_type=source.geometry_type, driver="virtual"
        )

    def _check_file(self, source: DataSource, layer_type: str) -> SourceCheck:
        located = locate_file(source, self.project_dir, self.data_root)
        if isinstance(located, SourceCheck):
            return located

        provider = source.provider
        if provider == "ogr":
            return self._check_ogr(source, located)
        if provider == "delimitedtext":
            return check_delimited(source, located)
        if provider == "spatialite":
            return check_spatialite(source, located, self._readable(located))
        if provider == "gdal" or layer_type == "raster" or _is_mbtiles(source):
            return check_raster(located, self._readable(located), source.layer_name)

        return SourceCheck(is_valid=True, filename=str(located.path)).with_warning(
            f'{provider} layer "{located.display}": the file exists, its content '
            "was not verified."
        )

    def _check_ogr(self, source: DataSource, located: LocatedFile) -> SourceCheck:
        refused = screen_for_gdal(located, source.archive_member)
        if refused is not None:
            return refused

        open_path = str(self._readable(located))
        if source.vsi_prefix:
            member = f"/{source.archive_member}" if source.archive_member else ""
            open_path = f"{source.vsi_prefix}{open_path}{member}"

        try:
            info = probe_vector(
                open_path,
                located.display,
                layer_name=source.layer_name,
                layer_index=source.layer_id,
            )
        except ProbeError as exc:
            return invalid_provider(exc.summary, exc.detail, filename=str(located.path))

        return SourceCheck(
            is_valid=True,
            filename=str(located.path),
            geometry_type=info.geometry_type,
            crs=info.crs,
            feature_count=info.feature_count,
            fields=info.fields,
            primary_keys=(info.fid_column,) if info.fid_column else (),
            driver=info.driver,
        )

    def _readable(self, located: LocatedFile) -> Path:
        if located.path.is_dir():
            return located.path
        return self._staging.readable_path(located.path)

    def _check_database(self, source: DataSource) -> SourceCheck:
        if (
            source.provider in ("postgres", "postgresraster")
            and source.table is not None
        ):
            return check_postgres(source, self.pg_options)

        if source.provider in ("postgres", "postgresraster"):
            return invalid_layer("The datasource names no table.")

        return missing_provider(
            source.provider,
            f"{source.provider} databases cannot be checked on the server",
        )


def _is_mbtiles(source: DataSource) -> bool:
    return source.params.get("type", "").lower() == "mbtiles"


def _memory_check(source: DataSource) -> SourceCheck:
    return SourceCheck(
        is_valid=True,
        error_code=ErrorCode.NO_ERROR,
        geometry_type=source.geometry_type,
        crs=source.params.get("crs") or None,
        feature_count=0,
        fields=tuple(FieldInfo(name=f.name, type=f.type) for f in source.memory_fields),
        driver="memory",
    ).with_warning("Memory layer: its features are not stored in the project file.")
