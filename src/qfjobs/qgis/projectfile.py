"""Opening QGIS project files (``.qgs`` and ``.qgz``) from disk or an upload.

:func:`open_project` reads a project by path and returns a :class:`ProjectFile`
holding the parsed lxml tree. :func:`validate_project_upload` is the cheap
check the API runs before it stores an uploaded project file.

Suffixes are matched case-insensitively (the reference's worker matches them
case-sensitively, its upload code does not; we use one rule).
"""

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lxml import etree

from qfjobs.errors import InvalidProjectFileError, ProjectFileNotFoundError
from qfjobs.qgis.qgzarchive import ZipLimits, find_qgs_member, read_qgs_member
from qfjobs.qgis.xmlparser import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, parse_xml

logger = logging.getLogger(__name__)

PROJECT_SUFFIXES = (".qgs", ".qgz")

_VERSION_NUMBERS = re.compile(r"^\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?")


@dataclass(frozen=True, eq=False)
class ProjectFile:
    """A parsed QGIS project.

    ``path`` is the file on disk, ``project_dir`` its (absolute) folder,
    against which relative layer paths resolve. ``qgs_member`` is the name of
    the ``.qgs`` inside a ``.qgz``, None for a plain ``.qgs``.
    """

    path: Path
    project_dir: Path
    filename: str
    tree: etree._ElementTree
    qgis_version: str
    qgs_member: str | None = None

    @property
    def root(self) -> etree._Element:
        return self.tree.getroot()

    @property
    def is_zipped(self) -> bool:
        return self.qgs_member is not None

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        """``(major, minor, patch)`` of the writing QGIS; zeros when unknown."""
        return parse_qgis_version(self.qgis_version)


def parse_qgis_version(version: str) -> tuple[int, int, int]:
    """Parse ``"3.30.0-'s-Hertogenbosch"`` into ``(3, 30, 0)``."""
    match = _VERSION_NUMBERS.match(version or "")
    if match is None:
        return (0, 0, 0)

    major, minor, patch = (int(part) if part else 0 for part in match.groups())
    return (major, minor, patch)


def project_suffix(name: str) -> str:
    """Return ``.qgs`` or ``.qgz`` for a project file name, else raise."""
    suffix = Path(name).suffix.lower()
    if suffix not in PROJECT_SUFFIXES:
        raise InvalidProjectFileError(
            f'Project file "{name}" has unknown file extension "{Path(name).suffix}"'
        )
    return suffix


def open_project(
    path: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    zip_limits: ZipLimits | None = None,
) -> ProjectFile:
    """Open and parse the ``.qgs`` or ``.qgz`` at ``path``.

    Raises :class:`ProjectFileNotFoundError` when the file does not exist and
    :class:`InvalidProjectFileError` for a wrong suffix, a bad archive, bad
    XML, or a root element other than ``<qgis>``.
    """
    suffix = project_suffix(path.name)
    if not path.is_file():
        raise ProjectFileNotFoundError(f'Project file "{path}" does not exist')

    _check_file_size(path, max_bytes)

    if suffix == ".qgz":
        limits = zip_limits or ZipLimits(max_qgs_bytes=max_bytes)
        member, data = read_qgs_member(str(path), path.name, limits)
        tree = parse_xml(data, max_bytes=max_bytes, max_depth=max_depth, name=member)
    else:
        member = None
        tree = parse_xml(path, max_bytes=max_bytes, max_depth=max_depth)

    version = _check_root(tree, path.name)
    logger.debug("Opened %s (QGIS %s)", path.name, version)
    return ProjectFile(
        path=path,
        project_dir=path.parent.absolute(),
        filename=path.name,
        tree=tree,
        qgis_version=version,
        qgs_member=member,
    )


def validate_project_upload(
    filename: str,
    data: bytes | IO[bytes],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    zip_limits: ZipLimits | None = None,
) -> str | None:
    """Cheap check of an uploaded project file before it is stored.

    For a ``.qgz`` the zip directory is checked (one ``.qgs``, safe names,
    sizes and ratios) and the name of its ``.qgs`` is returned. For a ``.qgs``
    only the size is checked and None is returned: bad XML is reported by the
    process_projectfile job, as the reference does (and field case B3 expects
    a failed job, not a refused upload). ``data`` is the bytes or a seekable
    binary stream; a stream is rewound to where it was.
    """
    suffix = project_suffix(filename)
    size = _payload_size(data)
    if size > max_bytes:
        raise InvalidProjectFileError(
            f"{filename} is larger than the limit of {max_bytes} bytes"
        )

    if suffix == ".qgs":
        return None

    limits = zip_limits or ZipLimits(max_qgs_bytes=max_bytes)
    stream = _as_stream(data)
    position = stream.tell()
    try:
        return find_qgs_member(stream, filename, limits)
    finally:
        stream.seek(position)


def _check_file_size(path: Path, max_bytes: int) -> None:
    size = path.stat().st_size
    if size > max_bytes:
        raise InvalidProjectFileError(
            f"{path.name} is {size} bytes, larger than the limit of {max_bytes}"
        )


def _check_root(tree: etree._ElementTree, label: str) -> str:
    root = tree.getroot()
    if root.tag != "qgis":
        raise InvalidProjectFileError(
            f"{label} is not a QGIS project: its root element is <{root.tag}>, "
            "not <qgis>"
        )
    return root.get("version", "")


def _payload_size(data: bytes | IO[bytes]) -> int:
    if isinstance(data, bytes):
        return len(data)

    position = data.tell()
    end = data.seek(0, 2)
    data.seek(position)
    return end - position


def _as_stream(data: bytes | IO[bytes]) -> IO[bytes]:
    if isinstance(data, bytes):
        return io.BytesIO(data)
    return data
