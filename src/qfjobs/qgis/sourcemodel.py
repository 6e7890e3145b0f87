"""The typed, frozen model of a QGIS layer data source.

:class:`DataSource` is what :func:`qfjobs.qgis.datasource.parse_datasource`
returns. It is shared by project inspection, packaging and delta application,
so it holds every part those need, already decoded, plus the raw text.
The raw text may contain passwords: show it only through
:func:`qfjobs.qgis.redaction.redact`.
"""

import os.path
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from qfjobs.qgis.uriparts import TableRef

WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[/\\]|\\\\|//)")


class SourceKind(StrEnum):
    """What a data source needs to be checked."""

    FILE = "file"
    DATABASE = "database"
    ONLINE = "online"
    MEMORY = "memory"
    VIRTUAL = "virtual"
    LOCALIZED = "localized"
    NONE = "none"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class MemoryField:
    """One ``field=name:type(length,precision)`` of a memory layer URI."""

    name: str
    type: str
    length: int | None = None
    precision: int | None = None


@dataclass(frozen=True)
class DataSource:
    """A parsed layer data source.

    ``path`` is the file path as written, with ``file:`` and ``localized:``
    prefixes removed and ``file:`` URIs decoded (``./data.gpkg``, ``C:/x.tif``,
    ``/abs/x.shp``). For an archive under ``/vsizip/`` it is the archive, and
    ``archive_member`` the path inside. ``params`` holds the remaining
    provider parameters (``|key=value`` options, URI query items or conninfo
    items, secrets included). ``table`` is set for postgres and spatialite.
    """

    provider: str
    raw: str
    kind: SourceKind
    path: str = ""
    layer_name: str | None = None
    layer_id: int | None = None
    subset: str | None = None
    geometry_type: str | None = None
    driver_prefix: str | None = None
    vsi_prefix: str | None = None
    archive_member: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    table: TableRef | None = None
    url: str = ""
    memory_fields: tuple[MemoryField, ...] = ()
    referenced_layer_ids: tuple[str, ...] = ()
    embedded_sources: tuple["DataSource", ...] = ()
    is_localized: bool = False

    @property
    def is_file_based(self) -> bool:
        return self.kind is SourceKind.FILE and bool(self.path)

    @property
    def is_windows_absolute(self) -> bool:
        return WINDOWS_ABSOLUTE.match(self.path) is not None

    @property
    def service(self) -> str | None:
        return self.params.get("service") or None

    @property
    def host(self) -> str | None:
        return self.params.get("host") or None

    def resolve_path(self, project_dir: Path) -> Path | None:
        """The absolute path of the file, or None when there is no local path.

        Relative paths resolve against ``project_dir``; ``..`` is normalised
        but symlinks are not followed. A Windows absolute path (``C:/x``)
        cannot exist on this server and is returned unchanged.
        """
        if not self.path:
            return None

        if self.is_windows_absolute:
            return Path(self.path)

        candidate = Path(self.path)
        if not candidate.is_absolute():
            candidate = project_dir / candidate
        return Path(os.path.normpath(candidate))
