"""Locating a layer's file safely before anything opens it.

Project files are uploaded by users, and their layer paths are untrusted. A
layer on ``/etc/passwd`` or ``../../secret.csv`` must not make the worker read
that file (reporting its fields would leak its first line), and a symlink in
the project must not lead out of it. So a layer file is only opened when its
path, with symlinks resolved, lies inside ``data_root`` (the project storage
folder; by default the project file's folder). Anything else is reported as
missing, as the reference would (the worker only has the project's files).

Files that GDAL would open are also screened by name and content:
formats that can pull in other files or URLs (GDAL VRT, GDALG pipelines, GML
with remote schemas) are refused, and only a list of common field-data
formats is let through to GDAL.
"""

import logging
import os.path
from dataclasses import dataclass
from pathlib import Path

from qfjobs.qgis.checkresult import SourceCheck, file_missing, invalid_provider
from qfjobs.qgis.sourcemodel import DataSource

logger = logging.getLogger(__name__)

OGR_EXTENSIONS = frozenset(
    {
        ".gpkg", ".shp", ".shz", ".dbf", ".geojson", ".json", ".geojsonl",
        ".geojsons", ".csv", ".tsv", ".psv", ".txt", ".xlsx", ".ods", ".kml",
        ".kmz", ".gpx", ".sqlite", ".sqlite3", ".db", ".spatialite", ".fgb",
        ".tab", ".mif", ".dxf", ".gdb", ".mbtiles", ".pmtiles", ".zip",
    }
)  # fmt: skip
_DANGEROUS_CONTENT = (b"<OGRVRTDataSource", b"<VRTDataset", b"gdal_streamed_alg")
SNIFF_BYTES = 4096


@dataclass(frozen=True)
class LocatedFile:
    """A layer file known to exist inside the data root.

    ``path`` is absolute and normalised (symlinks kept, so it stays the name
    the project uses); ``display`` is the path relative to the project
    folder, or as written when it lies elsewhere.
    """

    path: Path
    display: str


def display_path(source: DataSource, project_dir: Path) -> str:
    """How to name the layer's file in messages, without worker temp paths."""
    resolved = source.resolve_path(project_dir)
    if resolved is not None and not source.is_windows_absolute:
        try:
            return resolved.relative_to(project_dir).as_posix()
        except ValueError:
            pass
    return source.path


def locate_file(
    source: DataSource, project_dir: Path, data_root: Path
) -> LocatedFile | SourceCheck:
    """Find the source's file, or return the failed check explaining why not."""
    resolved = source.resolve_path(project_dir)
    shown = display_path(source, project_dir)
    if resolved is None:
        return invalid_provider("The layer has no file path.")

    filename = str(resolved)
    if source.is_windows_absolute:
        return file_missing(
            shown, filename, "a Windows path cannot exist on the server"
        )

    root = Path(os.path.normpath(data_root.absolute()))
    if not _is_within(resolved, root):
        return file_missing(shown, filename, "the path is outside the project folder")

    if not resolved.exists():
        return file_missing(shown, filename)

    if not _is_within(resolved.resolve(), root.resolve()):
        logger.warning("Layer file %s links outside the project folder", shown)
        return file_missing(
            shown, filename, "the path links outside the project folder"
        )

    return LocatedFile(path=resolved, display=shown)


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def screen_for_gdal(
    located: LocatedFile, member: str | None = None
) -> SourceCheck | None:
    """Refuse files GDAL should not open; None when the file may be opened."""
    name = member or located.path.name
    suffix = Path(name).suffix.lower()
    if located.path.is_dir():
        return None

    if suffix not in OGR_EXTENSIONS:
        return invalid_provider(
            f'Format of "{located.display}" is not supported by the server checks.',
            f'files ending in "{suffix or "(none)"}" are not opened on the server',
            filename=str(located.path),
        )

    with located.path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if any(marker in head for marker in _DANGEROUS_CONTENT):
        return invalid_provider(
            f'"{located.display}" is a GDAL virtual dataset, not opened on the server.',
            "virtual datasets can refer to arbitrary files and URLs",
            filename=str(located.path),
        )
    return None
